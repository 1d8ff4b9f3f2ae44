{#- Numbers the spine's rows, so that each keeps its identity (duplicates included) and its
    order. ROW_NUMBER() needs an ORDER BY on some warehouses. -#}
{% macro _spine_row_number(timestamp) -%}
  {{ return(adapter.dispatch('_spine_row_number', 'dbt_features')(timestamp)) }}
{%- endmacro %}

{% macro default___spine_row_number(timestamp) -%}
  row_number() over ()
{%- endmacro %}

{% macro snowflake___spine_row_number(timestamp) -%}
  row_number() over (order by {{ timestamp }})
{%- endmacro %}

{% macro spark___spine_row_number(timestamp) -%}
  row_number() over (order by {{ timestamp }})
{%- endmacro %}

{% macro databricks___spine_row_number(timestamp) -%}
  row_number() over (order by {{ timestamp }})
{%- endmacro %}
