{#- Feature references as requests: ['view:feature', 'view:*', 'a:b,c:d'] (or one such string)
    -> [{'view': ..., 'feature': ... or '*'}, ...], in the order given. -#}
{% macro _parse_requests(features) -%}
  {%- set items = [features] if features is string else features -%}
  {%- set requests = [] -%}
  {%- for item in items -%}
    {%- for part in item.split(',') if part.strip() -%}
      {%- set pieces = part.strip().split(':') -%}
      {%- if pieces | length != 2 or not pieces[0].strip() or not pieces[1].strip() -%}
        {%- do dbt_features._fail("feature reference '" ~ part.strip() ~ "' is not of the form view:feature or view:*") -%}
      {%- endif -%}
      {%- do requests.append({'view': pieces[0].strip(), 'feature': pieces[1].strip()}) -%}
    {%- endfor -%}
  {%- endfor -%}
  {%- if not requests -%}
    {%- do dbt_features._fail('no features requested') -%}
  {%- endif -%}
  {{- return(requests) -}}
{%- endmacro %}
