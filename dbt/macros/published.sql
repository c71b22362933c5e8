{#-
    A silver table as its readers see it: at its `published` tag, the last state whose audit
    (dbt tests and quality gate) passed (pipelines/publish.py). dbt unit tests feed fixtures
    as CTEs, which have no versions: those are read as they are.
-#}
{% macro published(relation) -%}
    {%- if (relation | string).startswith('__dbt__cte__') -%}
        {{ relation }}
    {%- else -%}
        {{ relation }} for version as of 'published'
    {%- endif -%}
{%- endmacro %}
