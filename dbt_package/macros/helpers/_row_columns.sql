{#- What every CTE passes on: the columns so far (the spine's, then the features joined), the
    spine row's number and its timestamp. -#}
{% macro _row_columns(carried, alias) -%}
  {{- return(dbt_features._columns(carried, alias) + [alias ~ '.__dbt_features_row', alias ~ '.__dbt_features_ts']) -}}
{%- endmacro %}
