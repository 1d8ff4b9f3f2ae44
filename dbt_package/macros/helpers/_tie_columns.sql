{#- The tie-break's columns (created_timestamp, then every feature) as {view column: its name
    once fetched}: a requested feature keeps its output column, the others get internal names. -#}
{% macro _tie_columns(view) -%}
  {%- set outputs = {} -%}
  {%- for output in view.outputs -%}
    {%- do outputs.update({output.feature: output.column}) -%}
  {%- endfor -%}
  {%- set names = {} -%}
  {%- for column in ([view.created] if view.created else []) + view.features -%}
    {%- do names.update({column: outputs.get(column, dbt_features._internal_name('tie_' ~ loop.index0))}) -%}
  {%- endfor -%}
  {{- return(names) -}}
{%- endmacro %}
