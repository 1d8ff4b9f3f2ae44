{#- A timestamp expression as naive UTC, the form every comparison uses: aware timestamps
    converted, naive ones kept, dates and other precisions cast. -#}
{% macro _utc_timestamp(expr, data_type) -%}
  {%- set t = (data_type or '') | lower | trim -%}
  {%- if ('with time zone' in t and 'without' not in t) or t in ('timestamptz', 'timestamp_tz', 'timestampltz') -%}
    cast({{ expr }} at time zone 'UTC' as timestamp)
  {%- elif t in ('timestamp', 'timestamp without time zone', 'datetime', 'timestamp_ntz', 'timestampntz') -%}
    {{ expr }}
  {%- else -%}
    cast({{ expr }} as timestamp)
  {%- endif -%}
{%- endmacro %}
