{{
    config(
        unique_key=['faixa_risco_credito', 'cultura_principal'],
    )
}}

{#-
    Each (risk band, crop) over its whole history of valid applications.

    score_risco_ajustado is the observed default rate smoothed towards the global one
    (a Beta prior worth `risk_prior_outcomes` outcomes, 20 by default):
        (defaults + prior * global_rate) / (outcomes + prior)
    so a band with few outcomes sits near the global rate and a band with many near its own.

    Incremental runs recompute the bands with an application loaded into silver since the last
    gold run; a new outcome moves the global rate, so it recomputes every band (at most
    6 bands x 10 crops rows).
-#}

{% set prior = var('risk_prior_outcomes') %}

with

silver_applications as (

    select * from {{ published(ref('silver_applications')) }}

),

silver_outcomes as (

    select * from {{ published(ref('silver_outcomes')) }}

),

valid_applications as (

    select * from silver_applications
    where registro_valido and cultura_principal is not null

),

valid_outcomes as (

    select
        valid_applications.faixa_risco_credito,
        valid_applications.cultura_principal,
        silver_outcomes.inadimplente,
        silver_outcomes._loaded_at
    from silver_outcomes
    inner join valid_applications
        on valid_applications.id_solicitacao = silver_outcomes.id_solicitacao

),

global_outcomes as (

    select
        {{ safe_ratio('count_if(inadimplente)', 'count(inadimplente)') }} as taxa_global
    from valid_outcomes

),

applications as (

    {{
        rows_to_recompute(
            'valid_applications',
            ['faixa_risco_credito', 'cultura_principal'],
            recompute_all_on_new_outcome=true,
        )
    }}

),

band_aggregates as (

    select
        faixa_risco_credito,
        cultura_principal,
        count(*) as volume,
        avg(serasa_score) as score_medio,
        avg(case when tipo_pessoa = 'JURIDICA' then 1e0 else 0e0 end) as share_juridica,
        (
            stddev_samp(valor_solicitado_credito)
            / nullif(avg(valor_solicitado_credito), 0)
        ) as volatilidade_credito,
        max(data_solicitacao) as feature_timestamp
    from applications
    group by faixa_risco_credito, cultura_principal

),

ordered_amounts as (

    select
        faixa_risco_credito,
        cultura_principal,
        valor_solicitado_credito,
        row_number() over band as amount_rank,
        count(*) over (partition by faixa_risco_credito, cultura_principal) as n
    from applications
    where valor_solicitado_credito is not null
    window band as (
        partition by faixa_risco_credito, cultura_principal
        order by valor_solicitado_credito
    )

),

band_medians as (

    -- the exact median: the middle value, or the mean of the two middle values
    select
        faixa_risco_credito,
        cultura_principal,
        avg(valor_solicitado_credito) as valor_mediano
    from ordered_amounts
    where amount_rank in ((n + 1) / 2, (n + 2) / 2)
    group by faixa_risco_credito, cultura_principal

),

band_outcomes as (

    select
        valid_outcomes.faixa_risco_credito,
        valid_outcomes.cultura_principal,
        count_if(valid_outcomes.inadimplente) as inadimplencias,
        count(valid_outcomes.inadimplente) as desfechos
    from valid_outcomes
    group by valid_outcomes.faixa_risco_credito, valid_outcomes.cultura_principal

),

final as (

    select
        band_aggregates.faixa_risco_credito,
        band_aggregates.cultura_principal,
        band_aggregates.volume,
        band_medians.valor_mediano,
        band_aggregates.score_medio,
        band_aggregates.share_juridica,
        {{ safe_ratio('band_outcomes.inadimplencias', 'band_outcomes.desfechos') }}
            as taxa_inadimplencia_observada,
        (
            (coalesce(band_outcomes.inadimplencias, 0) + {{ prior }} * global_outcomes.taxa_global)
            / (coalesce(band_outcomes.desfechos, 0) + {{ prior }})
        ) as score_risco_ajustado,
        band_aggregates.volatilidade_credito,
        band_aggregates.feature_timestamp,
        {{ loaded_at_now() }} as _loaded_at
    from band_aggregates
    cross join global_outcomes
    left join band_medians
        on band_medians.faixa_risco_credito = band_aggregates.faixa_risco_credito
        and band_medians.cultura_principal = band_aggregates.cultura_principal
    left join band_outcomes
        on band_outcomes.faixa_risco_credito = band_aggregates.faixa_risco_credito
        and band_outcomes.cultura_principal = band_aggregates.cultura_principal

)

select * from final
