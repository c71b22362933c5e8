{{
    config(
        unique_key='id_solicitacao',
        properties={"partitioning": "ARRAY['month(data_desfecho)']"},
    )
}}

{#-
    One row per application outcome (repaid or defaulted), deduplicated on the application id:
    the copy with the earliest Kafka offset wins. Incremental runs read only bronze rows
    ingested after silver's newest `ingested_at`.
-#}

with

bronze_outcomes as (

    select * from {{ source('bronze', 'outcomes') }}
    {% if is_incremental() %}
    where ingested_at > (
        select coalesce(max(ingested_at), timestamp '1970-01-01 00:00:00 UTC')
            - interval '{{ var("bronze_lookback_minutes") }}' minute
        from {{ this }}
    )
    {% endif %}

),

ranked as (

    select
        coalesce(nullif(id_solicitacao, ''), kafka_key) as event_key,
        *,
        row_number() over (
            partition by coalesce(nullif(id_solicitacao, ''), kafka_key)
            order by kafka_offset, kafka_partition, ingested_at
        ) as arrival_rank
    from bronze_outcomes

),

first_arrivals as (

    select * from ranked
    where arrival_rank = 1 and event_key is not null and event_key <> ''

),

{% if is_incremental() %}
new_events as (

    select first_arrivals.*
    from first_arrivals
    left join {{ this }} as existing
        on existing.id_solicitacao = first_arrivals.event_key
    where existing.id_solicitacao is null
        or first_arrivals.kafka_offset < existing.kafka_offset

),
{% else %}
new_events as (

    select * from first_arrivals

),
{% endif %}

final as (

    select
        event_key as id_solicitacao,
        proponente_id,
        {{ epoch_ms_to_timestamp('data_solicitacao') }} as data_solicitacao,
        {{ epoch_ms_to_timestamp('data_desfecho') }} as data_desfecho,
        inadimplente,
        dias_atraso,
        metadata_evento.versao_schema as versao_schema,
        {{ epoch_ms_to_timestamp('metadata_evento.timestamp_geracao_evento') }}
            as evento_gerado_em,
        schema_version,
        kafka_partition,
        kafka_offset,
        ingested_at,
        {{ loaded_at_now() }} as _loaded_at
    from new_events

)

select * from final
