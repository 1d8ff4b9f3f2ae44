{#- Among a key's rows at the same timestamp: the greatest created_timestamp, then the greatest
    feature values in declared order (all of the view's features, requested or not); NULL
    lowest throughout. -#}
{% macro _tie_break(view) -%}
  {%- set parts = [] -%}
  {%- if view.created -%}
    {%- do parts.append('f.' ~ adapter.quote(view.created) ~ ' desc nulls last') -%}
  {%- endif -%}
  {%- for feature in view.features -%}
    {%- set collation = dbt_features._code_point_collation() if feature in view.strings else '' -%}
    {%- do parts.append('f.' ~ adapter.quote(feature) ~ collation ~ ' desc nulls last') -%}
  {%- endfor -%}
  {{- return(parts | join(', ')) -}}
{%- endmacro %}
