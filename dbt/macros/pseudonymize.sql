{#-
    Keyed hash (HMAC-SHA256, lowercase hex) that replaces CPF/CNPJ, names and land registry
    numbers from silver on. The key comes from SAFRA_PSEUDONYM_KEY and is never written to a
    file by the project; pipelines.transform scrubs it from dbt's target folder after each run.
-#}
{% macro pseudonym_key() -%}
    {%- set key = env_var('SAFRA_PSEUDONYM_KEY', '') -%}
    {%- if execute and key | length < 16 -%}
        {{ exceptions.raise_compiler_error(
            "SAFRA_PSEUDONYM_KEY is missing or shorter than 16 characters: it keys the hash that "
            ~ "replaces CPF/CNPJ and names. Fix: `make env` or set it in the environment."
        ) }}
    {%- endif -%}
    {{ return(key) }}
{%- endmacro %}

{% macro pseudonymize(column) -%}
    lower(to_hex(hmac_sha256(to_utf8({{ column }}), to_utf8({{ dbt.string_literal(dbt.escape_single_quotes(pseudonym_key())) }}))))
{%- endmacro %}
