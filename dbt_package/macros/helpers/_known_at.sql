{#- As known at: the view row (alias `alias`) was created at or before the spine time `spine_ts`
    (naive UTC); a NULL created time counts as known since the event time, which the window
    already bounds by the spine time. Only for a view with a created_timestamp. -#}
{% macro _known_at(view, alias, spine_ts) -%}
  {%- set created = alias ~ '.' ~ adapter.quote(view.created) -%}
  {{- return('(' ~ dbt_features._utc_timestamp(created, view.created_type) ~ ' <= ' ~ spine_ts
             ~ ' or ' ~ created ~ ' is null)') -}}
{%- endmacro %}
