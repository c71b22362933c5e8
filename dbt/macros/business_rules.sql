{#- The domain's bands (docs/DOMAIN.md, "Business rules"), one macro each, used by the models. -#}

{#- Property size by area in hectares: < 50 MINIFUNDIO, < 200 PEQUENA, < 1000 MEDIA, else GRANDE. -#}
{% macro classificacao_propriedade(area) -%}
    (case
        when {{ area }} is null then null
        when {{ area }} < 50 then 'MINIFUNDIO'
        when {{ area }} < 200 then 'PEQUENA'
        when {{ area }} < 1000 then 'MEDIA'
        else 'GRANDE'
    end)
{%- endmacro %}

{#- Bureau score band: missing SEM_SCORE, >= 700 BAIXO, >= 500 MEDIO, >= 300 ALTO, else MUITO_ALTO. -#}
{% macro faixa_risco_credito(score) -%}
    (case
        when {{ score }} is null then 'SEM_SCORE'
        when {{ score }} >= 700 then 'BAIXO'
        when {{ score }} >= 500 then 'MEDIO'
        when {{ score }} >= 300 then 'ALTO'
        else 'MUITO_ALTO'
    end)
{%- endmacro %}

{#- How often an applicant applied: 1 NOVO, <= 5 RECORRENTE, <= 10 FREQUENTE, else MUITO_FREQUENTE. -#}
{% macro perfil_frequencia(n_solicitacoes) -%}
    (case
        when {{ n_solicitacoes }} <= 1 then 'NOVO'
        when {{ n_solicitacoes }} <= 5 then 'RECORRENTE'
        when {{ n_solicitacoes }} <= 10 then 'FREQUENTE'
        else 'MUITO_FREQUENTE'
    end)
{%- endmacro %}

{#- From the amount's coefficient of variation: none or 0 CONSISTENTE, < 0.2 ESTAVEL,
    < 0.5 MODERADO, else VOLATIL. -#}
{% macro perfil_volatilidade(coef_variacao) -%}
    (case
        when {{ coef_variacao }} is null or {{ coef_variacao }} = 0 then 'CONSISTENTE'
        when {{ coef_variacao }} < 0.2 then 'ESTAVEL'
        when {{ coef_variacao }} < 0.5 then 'MODERADO'
        else 'VOLATIL'
    end)
{%- endmacro %}

{#- Distinct applicants of a municipality: < 10 BAIXA, < 50 MEDIA, < 200 ALTA, else MUITO_ALTA. -#}
{% macro densidade_proponentes(n_proponentes) -%}
    (case
        when {{ n_proponentes }} < 10 then 'BAIXA'
        when {{ n_proponentes }} < 50 then 'MEDIA'
        when {{ n_proponentes }} < 200 then 'ALTA'
        else 'MUITO_ALTA'
    end)
{%- endmacro %}

{#- A ratio as double, null when the denominator is 0 or null. -#}
{% macro safe_ratio(numerator, denominator) -%}
    (cast({{ numerator }} as double) / nullif(cast({{ denominator }} as double), 0))
{%- endmacro %}
