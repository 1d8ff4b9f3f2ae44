{#- Stop compilation with one message; every check of the package goes through here so all
    messages name the macro the user called. -#}
{% macro _fail(msg) -%}
  {%- do exceptions.raise_compiler_error('dbt_features.training_set: ' ~ msg) -%}
{%- endmacro %}
