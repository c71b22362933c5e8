{{
    config(
        unique_key='proponente_id',
        properties={"partitioning": "ARRAY['bucket(proponente_id, 16)']"},
    )
}}

{#-
    The applicant's history, one row per valid application: each row holds the aggregates over
    that applicant's valid applications up to and including it (ordered by data_solicitacao,
    then id_solicitacao), and the outcomes known at its time. A point-in-time join takes the
    row whose feature_timestamp is the newest not after the moment it asks about.

    Incremental runs recompute every row of the applicants with an application or an outcome
    loaded into silver since the last gold run (delete+insert on proponente_id).
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
    where registro_valido

),

applications as (

    {{ rows_to_recompute('valid_applications', ['proponente_id']) }}

),

outcomes as (

    -- outcomes count only through a valid application; the applicant is the application's
    select
        applications.proponente_id,
        silver_outcomes.id_solicitacao,
        silver_outcomes.data_desfecho,
        silver_outcomes.inadimplente
    from silver_outcomes
    inner join applications
        on applications.id_solicitacao = silver_outcomes.id_solicitacao

),

cumulative as (

    select
        proponente_id,
        id_solicitacao,
        data_solicitacao,
        area_total_hectares,
        cultura_principal,
        anos_experiencia,
        serasa_score,
        count(*) over history as n_solicitacoes,
        avg(valor_solicitado_credito) over history as valor_medio,
        max(valor_solicitado_credito) over history as valor_max,
        min(valor_solicitado_credito) over history as valor_min,
        stddev_samp(valor_solicitado_credito) over history as valor_desvio,
        min(data_solicitacao) over history as primeira_solicitacao,
        max(data_solicitacao) over history as ultima_solicitacao,
        avg(serasa_score) over history as score_medio,
        avg(
            case when ibama_autuacoes_ativas then 1e0 when not ibama_autuacoes_ativas then 0e0 end
        ) over history as share_ibama
    from applications
    window history as (
        partition by proponente_id
        order by data_solicitacao, id_solicitacao
        rows between unbounded preceding and current row
    )

),

timeline as (

    -- applications and outcomes on one clock; at equal times the outcome comes first, so an
    -- outcome known at the application's moment counts for it
    select
        proponente_id,
        id_solicitacao,
        data_solicitacao as event_at,
        1 as event_order,
        0 as inadimplencia,
        0 as desfecho
    from applications
    union all
    select
        proponente_id,
        cast(null as varchar) as id_solicitacao,
        data_desfecho as event_at,
        0 as event_order,
        case when inadimplente then 1 else 0 end as inadimplencia,
        case when inadimplente is not null then 1 else 0 end as desfecho
    from outcomes

),

outcomes_known as (

    select
        id_solicitacao,
        event_order,
        sum(inadimplencia) over known_by as inadimplencias_anteriores,
        sum(desfecho) over known_by as desfechos_conhecidos
    from timeline
    window known_by as (
        partition by proponente_id
        order by event_at, event_order
        rows between unbounded preceding and current row
    )

),

features as (

    select
        cumulative.*,
        date_diff('day', cumulative.primeira_solicitacao, cumulative.ultima_solicitacao)
            as dias_entre_primeira_ultima,
        cumulative.valor_desvio / nullif(cumulative.valor_medio, 0) as coef_variacao,
        outcomes_known.inadimplencias_anteriores,
        outcomes_known.desfechos_conhecidos
    from cumulative
    inner join outcomes_known
        on outcomes_known.id_solicitacao = cumulative.id_solicitacao
        and outcomes_known.event_order = 1

),

final as (

    select
        proponente_id,
        id_solicitacao,
        data_solicitacao as feature_timestamp,
        n_solicitacoes,
        valor_medio,
        valor_max,
        valor_min,
        valor_desvio,
        primeira_solicitacao,
        ultima_solicitacao,
        dias_entre_primeira_ultima,
        score_medio,
        share_ibama,
        area_total_hectares,
        cultura_principal,
        anos_experiencia,
        serasa_score,
        {{ perfil_frequencia('n_solicitacoes') }} as perfil_frequencia,
        coef_variacao,
        {{ perfil_volatilidade('coef_variacao') }} as perfil_volatilidade,
        cast(inadimplencias_anteriores as bigint) as inadimplencias_anteriores,
        cast(desfechos_conhecidos as bigint) as desfechos_conhecidos,
        {{ loaded_at_now() }} as _loaded_at
    from features

)

select * from final
