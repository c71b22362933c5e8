{#-
    Kafka delivers at least once, so bronze can hold an event more than once. `first_arrival`
    selects each event of `bronze` (a relation with bronze's columns) once: the copy with the
    earliest Kafka offset (then partition, then ingestion time) wins, within a batch and across
    batches. An event's key is its `id_solicitacao`, or its Kafka key where that is empty; rows
    with neither are dropped.

    On an incremental run it reads only the bronze rows ingested after the newest `ingested_at`
    of the silver table being built (less `bronze_lookback_minutes`), and skips the events that
    table already holds, keyed on `id_solicitacao`, from an earlier (or the same) Kafka offset.

    Returns every column of `bronze`, plus `event_key` and `arrival_rank` (always 1).
-#}
{% macro first_arrival(bronze) -%}

    with

    new_bronze as (

        select * from {{ bronze }}
        {%- if is_incremental() %}
        where ingested_at > (
            select
                coalesce(max(ingested_at), timestamp '1970-01-01 00:00:00 UTC')
                - interval '{{ var("bronze_lookback_minutes") }}' minute
            from {{ this }}
        )
        {%- endif %}

    ),

    keyed as (

        select
            coalesce(nullif(id_solicitacao, ''), kafka_key) as event_key,
            *
        from new_bronze

    ),

    ranked as (

        select
            *,
            row_number() over (
                partition by event_key
                order by kafka_offset, kafka_partition, ingested_at
            ) as arrival_rank
        from keyed

    ),

    earliest_copies as (

        select * from ranked
        where arrival_rank = 1 and event_key is not null and event_key <> ''

    ),

    final as (

        select earliest_copies.*
        from earliest_copies
        {%- if is_incremental() %}
        left join {{ this }} as existing
            on existing.id_solicitacao = earliest_copies.event_key
        where
            existing.id_solicitacao is null
            or earliest_copies.kafka_offset < existing.kafka_offset
        {%- endif %}

    )

    select * from final

{%- endmacro %}
