{#- The spine as a dict: its relation, columns and timestamp column. Without spine_timestamp the
    timestamp is the one column named event_timestamp or timestamp. -#}
{% macro _spine(relation, spine_timestamp) -%}
  {%- set columns = dbt_features._columns_by_name(relation) -%}
  {%- if not columns -%}
    {%- do dbt_features._fail('spine ' ~ relation ~ ' has no columns; is it built?') -%}
  {%- endif -%}
  {%- set timestamp = spine_timestamp -%}
  {%- if timestamp is none -%}
    {%- set found = ['event_timestamp', 'timestamp'] | select('in', columns) | list -%}
    {%- if found | length != 1 -%}
      {%- do dbt_features._fail('cannot tell the timestamp column of spine ' ~ relation ~ ' ('
          ~ (found | join(' and ') or 'no column named event_timestamp or timestamp')
          ~ "); pass spine_timestamp='...'") -%}
    {%- endif -%}
    {%- set timestamp = found[0] -%}
  {%- endif -%}
  {%- if timestamp not in columns -%}
    {%- do dbt_features._fail('spine ' ~ relation ~ " has no column '" ~ timestamp
        ~ "' (spine_timestamp); its columns are: " ~ (columns.keys() | join(', '))) -%}
  {%- endif -%}
  {{- return({
      'relation': relation,
      'columns': columns,
      'names': columns.keys() | list,
      'timestamp': timestamp,
      'timestamp_type': columns[timestamp].data_type,
  }) -}}
{%- endmacro %}
