{#-
    Keyed hash (HMAC-SHA256, lowercase hex) that replaces CPF/CNPJ, names and land registry
    numbers from silver on. Trino computes it with Safra's plugin functions
    (commands/stack/resources/trino-pseudonym/), keyed by SAFRA_PSEUDONYM_KEY, which only the
    Trino process reads: the key is in no SQL text, so never in dbt's files or Trino's query
    history. Equal to Python's safra.pseudonyms.
-#}
{% macro pseudonymize(column) -%}
    safra_pseudonym({{ column }})
{%- endmacro %}

{#- A tax id (CPF/CNPJ) by its digits only: 123.456.789-09 and 12345678909 get one pseudonym. -#}
{% macro pseudonymize_tax_id(column) -%}
    safra_tax_id_pseudonym({{ column }})
{%- endmacro %}
