{#- The columns that identify a spine row in a view's CTE and join it back to the spine: the row
    number where the spine CTE is computed once (_ctes_computed_once), otherwise the view's join
    keys and the spine timestamp, which are all a view's features depend on (two spine rows
    with equal ones get equal features, so either may take the other's). -#}
{% macro _view_key(view) -%}
  {%- if dbt_features._ctes_computed_once() -%}
    {{- return([dbt_features._internal_name('row')]) -}}
  {%- endif -%}
  {{- return(view.join_keys + [dbt_features._internal_name('ts')]) -}}
{%- endmacro %}
