{{
    config(
        unique_key=['uf', 'municipio'],
    )
}}

{#-
    Current state of each municipality (uf, municipio) over its whole history of valid
    applications. Incremental runs recompute the municipalities with an application, or an
    outcome of one of their applications, loaded into silver since the last gold run.
-#}

with

silver_applications as (

    select * from {{ published(ref('silver_applications')) }}

),

silver_outcomes as (

    select * from {{ published(ref('silver_outcomes')) }}

),

valid_applications as (

    select * from silver_applications
    where registro_valido and municipio is not null

),

applications as (

    {{ rows_to_recompute('valid_applications', ['uf', 'municipio']) }}

),

outcomes as (

    -- outcomes count only through a valid application, in the application's municipality
    select
        applications.uf,
        applications.municipio,
        silver_outcomes.inadimplente
    from silver_outcomes
    inner join applications
        on applications.id_solicitacao = silver_outcomes.id_solicitacao

),

location_aggregates as (

    select
        uf,
        municipio,
        count(distinct proponente_id) as n_proponentes,
        avg(valor_solicitado_credito) as valor_medio,
        avg(area_total_hectares) as area_media,
        avg(
            case when faixa_risco_credito in ('ALTO', 'MUITO_ALTO') then 1e0 else 0e0 end
        ) as share_alto_risco,
        max(data_solicitacao) as feature_timestamp
    from applications
    group by uf, municipio

),

crop_counts as (

    select
        uf,
        municipio,
        cultura_principal,
        count(*) as n_aplicacoes
    from applications
    where cultura_principal is not null
    group by uf, municipio, cultura_principal

),

ranked_crops as (

    -- a true mode: the most frequent crop, ties broken alphabetically
    select
        *,
        row_number() over (
            partition by uf, municipio
            order by n_aplicacoes desc, cultura_principal asc
        ) as crop_rank
    from crop_counts

),

dominant_crop as (

    select
        uf,
        municipio,
        cultura_principal as cultura_dominante
    from ranked_crops
    where crop_rank = 1

),

location_outcomes as (

    select
        uf,
        municipio,
        count_if(inadimplente) as inadimplencias,
        count(inadimplente) as desfechos
    from outcomes
    group by uf, municipio

),

final as (

    select
        location_aggregates.uf,
        location_aggregates.municipio,
        location_aggregates.n_proponentes,
        location_aggregates.valor_medio,
        location_aggregates.area_media,
        dominant_crop.cultura_dominante,
        location_aggregates.share_alto_risco,
        {{ densidade_proponentes('location_aggregates.n_proponentes') }}
            as densidade_proponentes,
        {{ safe_ratio('location_outcomes.inadimplencias', 'location_outcomes.desfechos') }}
            as taxa_inadimplencia_observada,
        location_aggregates.feature_timestamp,
        {{ loaded_at_now() }} as _loaded_at
    from location_aggregates
    left join dominant_crop
        on dominant_crop.uf = location_aggregates.uf
        and dominant_crop.municipio = location_aggregates.municipio
    left join location_outcomes
        on location_outcomes.uf = location_aggregates.uf
        and location_outcomes.municipio = location_aggregates.municipio

)

select * from final
