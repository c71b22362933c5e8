{#- The column holds keyed hashes only: 64 lowercase hex characters (HMAC-SHA256), or null. -#}
{% test hex_digest(model, column_name) %}

select {{ column_name }}
from {{ model }}
where {{ column_name }} is not null
    and not regexp_like({{ column_name }}, '^[0-9a-f]{64}$')

{% endtest %}
