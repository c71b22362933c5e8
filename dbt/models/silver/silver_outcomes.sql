{{
    config(
        unique_key='id_solicitacao',
        properties={"partitioning": "ARRAY['month(data_desfecho)']"},
    )
}}

{#-
    One row per application outcome (repaid or defaulted), deduplicated on the application id:
    the copy with the earliest Kafka offset wins (macro first_arrival). Incremental runs read
    only bronze rows ingested after silver's newest `ingested_at`.
-#}

with

bronze_outcomes as (

    select * from {{ source('bronze', 'outcomes') }}

),

first_arrivals as (

    {{ first_arrival('bronze_outcomes') }}

),

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
    from first_arrivals

)

select * from final
