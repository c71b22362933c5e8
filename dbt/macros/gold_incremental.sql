{#-
    Gold reprocesses only the keys whose silver rows changed since its last run: silver rows
    loaded (`_loaded_at`) after the newest `_loaded_at` in the gold table. Those keys are then
    recomputed over their whole silver history, so aggregates stay right.
-#}
{% macro gold_watermark() -%}
    (select coalesce(max(_loaded_at), timestamp '1970-01-01 00:00:00 UTC') from {{ this }})
{%- endmacro %}

{#- Current run time, in the type every `_loaded_at` column has. -#}
{% macro loaded_at_now() -%}
    cast(current_timestamp as timestamp(6) with time zone)
{%- endmacro %}
