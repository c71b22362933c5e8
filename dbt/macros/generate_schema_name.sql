{#-
    Silver and gold land in `<prefix>silver` and `<prefix>gold`. The prefix
    (SAFRA_SCHEMA_PREFIX, empty by default) isolates test runs from the shared schemas.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- set prefix = env_var('SAFRA_SCHEMA_PREFIX', '') | trim -%}
    {%- set base = custom_schema_name | trim if custom_schema_name is not none else target.schema -%}
    {{ prefix ~ base }}
{%- endmacro %}
