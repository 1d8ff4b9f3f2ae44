{#- What makes ORDER BY compare strings by code point, as the Python path does: nothing where
    that is the default, COLLATE "C" on PostgreSQL (whose default follows the locale). -#}
{% macro _code_point_collation() -%}
  {{ return(adapter.dispatch('_code_point_collation', 'dbt_features')()) }}
{%- endmacro %}

{% macro default___code_point_collation() -%}
  {{ return('') }}
{%- endmacro %}

{% macro postgres___code_point_collation() -%}
  {{ return(' collate "C"') }}
{%- endmacro %}
