{#-
    Epoch milliseconds (BIGINT, as on the wire and in bronze) to `timestamp(6) with time zone`
    in UTC. Silver is the only place this happens.
-#}
{% macro epoch_ms_to_timestamp(column) -%}
    cast(from_unixtime_nanos(cast({{ column }} as bigint) * 1000000) as timestamp(6) with time zone)
{%- endmacro %}
