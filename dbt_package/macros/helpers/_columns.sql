{#- Quoted column references for a select list or join: _columns(['a', 'b'], 'p') ->
    ['p."a"', 'p."b"']; with as_names, each is renamed: 'f."x" as "y"'. Join the result with
    ', ' to write it out. -#}
{% macro _columns(names, alias=none, as_names=none) -%}
  {%- set prefix = (alias ~ '.') if alias else '' -%}
  {%- set columns = [] -%}
  {%- for name in names -%}
    {%- set column = prefix ~ adapter.quote(name) -%}
    {%- if as_names is not none -%}
      {%- set column = column ~ ' as ' ~ adapter.quote(as_names[loop.index0]) -%}
    {%- endif -%}
    {%- do columns.append(column) -%}
  {%- endfor -%}
  {{- return(columns) -}}
{%- endmacro %}
