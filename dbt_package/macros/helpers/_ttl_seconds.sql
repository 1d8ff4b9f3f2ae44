{#- A view's ttl in seconds: '30d' -> 2592000; 0 or none -> none (no lower bound). -#}
{% macro _ttl_seconds(ttl) -%}
  {%- if ttl is none or ttl == 0 or ttl == '0' -%}{{ return(none) }}{%- endif -%}
  {%- set m = modules.re.match('^\\s*(\\d+)\\s*([smhdw])\\s*$', ttl | string) -%}
  {%- if not m -%}
    {%- do dbt_features._fail("ttl '" ~ ttl ~ "' is not a duration like 30d, 12h, 90m, 45s or 2w") -%}
  {%- endif -%}
  {%- set seconds = (m.group(1) | int) * {'s': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800}[m.group(2)] -%}
  {{- return(seconds if seconds else none) -}}
{%- endmacro %}
