{#- One feature view joined point in time to the rows so far (the CTE named previous), as one or
    two more CTEs, each starting with a comma; the last is named _internal_name('view_' ~ index).
    carried: the columns so far. -#}
{% macro _pit_join(previous, index, view, carried) -%}
  {{ return(adapter.dispatch('_pit_join', 'dbt_features')(previous, index, view, carried)) }}
{%- endmacro %}


{#- Portable: every view row of the key at or before the spine time (and within the ttl), ranked
    latest first, the tie-break after; the first kept. -#}
{% macro default___pit_join(previous, index, view, carried) -%}
  {%- set features = view.outputs | map(attribute='feature') | list -%}
  {%- set outputs = view.outputs | map(attribute='column') | list -%}
  {%- set f_ts = dbt_features._utc_timestamp('f.' ~ adapter.quote(view.timestamp), view.timestamp_type) -%}
, {{ dbt_features._internal_name('view_' ~ index) }} as (
    select
        {{ (dbt_features._row_columns(carried, 'r') + dbt_features._columns(outputs, 'r')) | join(',\n        ') }}
    from (
        select
            {{ (dbt_features._row_columns(carried, 'p') + dbt_features._columns(features, 'f', outputs)) | join(',\n            ') }},
            row_number() over (
                partition by p.__dbt_features_row
                order by {{ f_ts }} desc nulls last, {{ dbt_features._tie_break(view) }}
            ) as __dbt_features_rn
        from {{ previous }} as p
        left join {{ view.relation }} as f
            on {{ (dbt_features._keys_equal(view.join_keys, 'p', 'f') + [f_ts ~ ' <= p.__dbt_features_ts']) | join(' and ') }}
            {%- if view.ttl %}
            and {{ f_ts }} >= p.__dbt_features_ts - {{ dbt_features._interval_seconds(view.ttl) }}
            {%- endif %}
    ) as r
    where r.__dbt_features_rn = 1
)
{%- endmacro %}


{#- DuckDB: ASOF JOIN finds the latest view time at or before the spine time per key (the ttl
    applied to what it found), then a plain join fetches that time's rows and the tie-break
    keeps one. -#}
{% macro duckdb___pit_join(previous, index, view, carried) -%}
  {%- set features = view.outputs | map(attribute='feature') | list -%}
  {%- set outputs = view.outputs | map(attribute='column') | list -%}
  {%- set match = dbt_features._internal_name('match_' ~ index) -%}
  {%- set f_ts = dbt_features._utc_timestamp('f.' ~ adapter.quote(view.timestamp), view.timestamp_type) -%}
  {%- set view_ts = dbt_features._utc_timestamp(adapter.quote(view.timestamp), view.timestamp_type) -%}
, {{ match }} as (
    select
        {{ dbt_features._row_columns(carried, 'p') | join(',\n        ') }},
        {% if view.ttl -%}
        case when f.__dbt_features_ts >= p.__dbt_features_ts - {{ dbt_features._interval_seconds(view.ttl) }}
            then f.__dbt_features_ts end
        {%- else -%}
        f.__dbt_features_ts
        {%- endif %} as __dbt_features_match
    from {{ previous }} as p
    asof left join (
        select
            {{ (dbt_features._columns(view.join_keys) + [view_ts ~ ' as __dbt_features_ts']) | join(',\n            ') }}
        from {{ view.relation }}
    ) as f
        on {{ (dbt_features._keys_equal(view.join_keys, 'p', 'f') + ['p.__dbt_features_ts >= f.__dbt_features_ts']) | join(' and ') }}
), {{ dbt_features._internal_name('view_' ~ index) }} as (
    select
        {{ (dbt_features._row_columns(carried, 'm') + dbt_features._columns(features, 'f', outputs)) | join(',\n        ') }}
    from {{ match }} as m
    left join {{ view.relation }} as f
        on {{ (dbt_features._keys_equal(view.join_keys, 'm', 'f') + ['m.__dbt_features_match = ' ~ f_ts]) | join(' and ') }}
    qualify row_number() over (
        partition by m.__dbt_features_row
        order by {{ dbt_features._tie_break(view) }}
    ) = 1
)
{%- endmacro %}
