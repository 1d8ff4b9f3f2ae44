{#- Names the package gives its CTEs, prefixed so they cannot clash with the user's columns. -#}
{% macro _internal_name(name) -%}
  {{- return('__dbt_features_' ~ name) -}}
{%- endmacro %}
