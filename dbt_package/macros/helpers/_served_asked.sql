{#- Whether a served-log row asked for a feature: its served_features column (a list of names)
    holds it. -#}
{% macro _served_asked(column, feature) -%}
  {{ return(adapter.dispatch('_served_asked', 'dbt_features')(column, feature)) }}
{%- endmacro %}

{% macro default___served_asked(column, feature) -%}
  list_contains({{ column }}, '{{ feature }}')
{%- endmacro %}

{% macro postgres___served_asked(column, feature) -%}
  '{{ feature }}' = any({{ column }})
{%- endmacro %}
