{#- Among a key's rows at the same timestamp: the greatest created_timestamp, then the greatest
    feature values in declared order (all of the view's features, requested or not); NULL
    lowest throughout. Columns of the relation aliased `alias`; `names` maps a view column to
    what it is called there when renamed (see _tie_columns). -#}
{% macro _tie_break(view, alias='f', names=none) -%}
  {%- set names = names or {} -%}
  {%- set parts = [] -%}
  {%- if view.created -%}
    {%- do parts.append(alias ~ '.' ~ adapter.quote(names.get(view.created, view.created)) ~ ' desc nulls last') -%}
  {%- endif -%}
  {%- for feature in view.features -%}
    {%- set collation = dbt_features._code_point_collation() if feature in view.strings else '' -%}
    {%- do parts.append(alias ~ '.' ~ adapter.quote(names.get(feature, feature)) ~ collation ~ ' desc nulls last') -%}
  {%- endfor -%}
  {{- return(parts | join(', ')) -}}
{%- endmacro %}
