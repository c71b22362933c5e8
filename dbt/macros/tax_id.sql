{#-
    Brazilian tax ids, validated in SQL like pipelines.simulator.documents: punctuation
    (". - / " and spaces) is allowed, ids whose digits are all equal are rejected, and both
    modulo-11 check digits must match. CPF: 11 digits (people, FISICA); CNPJ: 14 digits
    (companies, JURIDICA).
-#}
{% macro _tax_id_digits(column) -%}
    regexp_replace(trim({{ column }}), '[./ -]', '')
{%- endmacro %}

{#- Weighted sum of the first `weights|length` digits of `digits` (a varchar expression). -#}
{% macro _weighted_digit_sum(digits, weights) -%}
    reduce(
        sequence(1, {{ weights | length }}), 0,
        (acc, i) -> acc + (codepoint(cast(substr({{ digits }}, i, 1) as varchar(1))) - 48)
            * element_at(array[{{ weights | join(', ') }}], i),
        acc -> acc
    )
{%- endmacro %}

{% macro _check_digit(digits, weights) -%}
    (case when {{ _weighted_digit_sum(digits, weights) }} % 11 < 2 then 0
          else 11 - {{ _weighted_digit_sum(digits, weights) }} % 11 end)
{%- endmacro %}

{% macro _digit_at(digits, position) -%}
    (codepoint(cast(substr({{ digits }}, {{ position }}, 1) as varchar(1))) - 48)
{%- endmacro %}

{% macro _valid_mod11(column, length, weights_1, weights_2) -%}
    {%- set d = _tax_id_digits(column) -%}
    coalesce(
        regexp_like({{ d }}, '^[0-9]{{ '{' ~ length ~ '}' }}$')
        and {{ d }} <> lpad('', {{ length }}, substr({{ d }}, 1, 1))
        and {{ _check_digit(d, weights_1) }} = {{ _digit_at(d, length - 1) }}
        and {{ _check_digit(d, weights_2) }} = {{ _digit_at(d, length) }},
        false
    )
{%- endmacro %}

{% macro is_valid_cpf(column) -%}
    {{ _valid_mod11(column, 11, [10, 9, 8, 7, 6, 5, 4, 3, 2], [11, 10, 9, 8, 7, 6, 5, 4, 3, 2]) }}
{%- endmacro %}

{% macro is_valid_cnpj(column) -%}
    {{ _valid_mod11(column, 14, [5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2], [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]) }}
{%- endmacro %}

{#- The tax id the person type needs: a CPF for FISICA, a CNPJ for JURIDICA; false otherwise. -#}
{% macro is_valid_tax_id(column, tipo_pessoa) -%}
    (case {{ tipo_pessoa }}
        when 'FISICA' then {{ is_valid_cpf(column) }}
        when 'JURIDICA' then {{ is_valid_cnpj(column) }}
        else false
    end)
{%- endmacro %}
