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

{#-
    The rows of `relation` (valid applications) a run computes from. A full run takes them all.
    An incremental run takes the rows whose `keys` (a list of columns) changed: an application
    with those keys was loaded into silver since the last gold run, or an outcome of one of the
    `relation`'s applications was. With `recompute_all_on_new_outcome`, any new outcome takes
    every row instead (for aggregates that every outcome moves).
    `silver_applications` and `silver_outcomes` are the calling model's import CTEs.
-#}
{% macro rows_to_recompute(relation, keys, recompute_all_on_new_outcome=false) -%}
    {%- set key_columns = keys | join(', ') -%}
    select * from {{ relation }}
    {%- if is_incremental() %}
    where ({{ key_columns }}) in (
        select {{ key_columns }} from silver_applications
        where _loaded_at > {{ gold_watermark() }}
        union
        select {{ key_columns }} from {{ relation }}
        {%- if recompute_all_on_new_outcome %}
        where exists (
            select 1 from silver_outcomes
            where _loaded_at > {{ gold_watermark() }}
        )
        {%- else %}
        where id_solicitacao in (
            select id_solicitacao from silver_outcomes
            where _loaded_at > {{ gold_watermark() }}
        )
        {%- endif %}
    )
    {%- endif %}
{%- endmacro %}
