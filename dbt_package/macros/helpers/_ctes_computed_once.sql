{#- Whether a CTE written `as materialized (...)` is computed once however many queries read it,
    so that a spine numbered in it keeps its numbers in every reader. PostgreSQL (12 and later)
    and DuckDB promise it; elsewhere a CTE may be evaluated once per reader (BigQuery, Trino,
    Spark inline it), and ROW_NUMBER() OVER () need not number the rows alike each time. -#}
{% macro _ctes_computed_once() -%}
  {{ return(adapter.dispatch('_ctes_computed_once', 'dbt_features')()) }}
{%- endmacro %}

{% macro default___ctes_computed_once() -%}
  {{ return(false) }}
{%- endmacro %}

{% macro duckdb___ctes_computed_once() -%}
  {{ return(true) }}
{%- endmacro %}

{% macro postgres___ctes_computed_once() -%}
  {{ return(true) }}
{%- endmacro %}

{#- dbt dispatches Redshift to postgres__ macros, but Redshift has no `as materialized`. -#}
{% macro redshift___ctes_computed_once() -%}
  {{ return(false) }}
{%- endmacro %}
