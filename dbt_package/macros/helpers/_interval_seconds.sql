{#- An interval of n seconds, subtracted from a timestamp for a view's ttl. -#}
{% macro _interval_seconds(n) -%}
  {{ return(adapter.dispatch('_interval_seconds', 'dbt_features')(n)) }}
{%- endmacro %}

{% macro default___interval_seconds(n) -%}
  interval '{{ n }} second'
{%- endmacro %}

{% macro bigquery___interval_seconds(n) -%}
  interval {{ n }} second
{%- endmacro %}
