{#- A relation's columns as {name: Column}, in the relation's order. -#}
{% macro _columns_by_name(relation) -%}
  {%- set by_name = {} -%}
  {%- for column in adapter.get_columns_in_relation(relation) -%}
    {%- do by_name.update({column.name: column}) -%}
  {%- endfor -%}
  {{- return(by_name) -}}
{%- endmacro %}
