{#- One feature view joined point in time to the spine, portably (see _pit_join): every view row
    of the key at or before the spine time (within the ttl, and, as known at, created by then),
    ranked latest first, the tie-break after; the first kept. -#}
{% macro _window_join(spine_cte, index, view, key, as_known_at=false) -%}
  {%- set features = view.outputs | map(attribute='feature') | list -%}
  {%- set outputs = view.outputs | map(attribute='column') | list -%}
  {%- set spine_ts = 'p.' ~ adapter.quote(dbt_features._internal_name('ts')) -%}
  {%- set f_ts = dbt_features._utc_timestamp('f.' ~ adapter.quote(view.timestamp), view.timestamp_type) -%}
, {{ dbt_features._internal_name('view_' ~ index) }} as (
    select
        {{ (dbt_features._columns(key, 'r') + dbt_features._columns(outputs, 'r')) | join(',\n        ') }}
    from (
        select
            {{ (dbt_features._columns(key, 'p') + dbt_features._columns(features, 'f', outputs)) | join(',\n            ') }},
            row_number() over (
                partition by {{ dbt_features._columns(key, 'p') | join(', ') }}
                order by {{ f_ts }} desc nulls last, {{ dbt_features._tie_break(view) }}
            ) as {{ adapter.quote(dbt_features._internal_name('rn')) }}
        from {{ spine_cte }} as p
        left join {{ view.relation }} as f
            on {{ (dbt_features._keys_equal(view.join_keys, 'p', 'f') + [f_ts ~ ' <= ' ~ spine_ts]) | join(' and ') }}
            {%- if view.ttl %}
            and {{ f_ts }} >= {{ spine_ts }} - {{ dbt_features._interval_seconds(view.ttl) }}
            {%- endif %}
            {%- if as_known_at and view.created %}
            and {{ dbt_features._known_at(view, 'f', spine_ts) }}
            {%- endif %}
            and {{ dbt_features._spine_span(f_ts, spine_cte, view) }}
    ) as r
    where r.{{ adapter.quote(dbt_features._internal_name('rn')) }} = 1
)
{%- endmacro %}
