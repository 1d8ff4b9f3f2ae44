{#- Join conditions on the keys: ['p."k" = f."k"', ...]; join them with ' and '. -#}
{% macro _keys_equal(keys, left, right) -%}
  {%- set conditions = [] -%}
  {%- for key in keys -%}
    {%- do conditions.append(left ~ '.' ~ adapter.quote(key) ~ ' = ' ~ right ~ '.' ~ adapter.quote(key)) -%}
  {%- endfor -%}
  {{- return(conditions) -}}
{%- endmacro %}
