{#- One feature view joined point in time to the spine (the CTE named spine_cte), as one or two
    more CTEs, each starting with a comma; the last, _internal_name('view_' ~ index), holds the
    columns of key (see _view_key) and the view's requested features, one row per spine row
    (per distinct key where key is not the row number). -#}
{% macro _pit_join(spine_cte, index, view, key) -%}
  {{ return(adapter.dispatch('_pit_join', 'dbt_features')(spine_cte, index, view, key)) }}
{%- endmacro %}


{#- Portable: every view row of the key at or before the spine time (and within the ttl), ranked
    latest first, the tie-break after; the first kept. -#}
{% macro default___pit_join(spine_cte, index, view, key) -%}
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
    ) as r
    where r.{{ adapter.quote(dbt_features._internal_name('rn')) }} = 1
)
{%- endmacro %}


{#- DuckDB: ASOF JOIN finds the latest view time at or before the spine time per key (the ttl
    applied to what it found), then a plain join fetches that time's rows (materialized: read
    up to three times), and the tie-break keeps one. The tie-break (a window over every row) is
    skipped when no matched time held two rows, which shows as no more fetched rows than spine
    rows; keyed by join keys and time, the spine's duplicates share a key, so it always ranks. -#}
{% macro duckdb___pit_join(spine_cte, index, view, key) -%}
  {%- set features = view.outputs | map(attribute='feature') | list -%}
  {%- set outputs = view.outputs | map(attribute='column') | list -%}
  {%- set match = dbt_features._internal_name('match_' ~ index) -%}
  {%- set fetch = dbt_features._internal_name('fetch_' ~ index) -%}
  {%- set ts = adapter.quote(dbt_features._internal_name('ts')) -%}
  {%- set matched = adapter.quote(dbt_features._internal_name('match')) -%}
  {%- set f_ts = dbt_features._utc_timestamp('f.' ~ adapter.quote(view.timestamp), view.timestamp_type) -%}
  {%- set view_ts = dbt_features._utc_timestamp(adapter.quote(view.timestamp), view.timestamp_type) -%}
  {%- set ties = dbt_features._tie_columns(view) -%}
  {%- set extra = [] -%}
  {%- for column, name in ties.items() if name not in outputs -%}
    {%- do extra.append('f.' ~ adapter.quote(column) ~ ' as ' ~ adapter.quote(name)) -%}
  {%- endfor -%}
  {%- set by_row = key == [dbt_features._internal_name('row')] -%}
  {%- set fetched_rows = '(select count(*) from ' ~ fetch ~ ')' -%}
  {%- set spine_rows = '(select count(*) from ' ~ spine_cte ~ ')' -%}
, {{ match }} as (
    select
        {{ dbt_features._columns((key + view.join_keys) | unique | list, 'p') | join(',\n        ') }},
        {% if view.ttl -%}
        case when f.{{ ts }} >= p.{{ ts }} - {{ dbt_features._interval_seconds(view.ttl) }}
            then f.{{ ts }} end
        {%- else -%}
        f.{{ ts }}
        {%- endif %} as {{ matched }}
    from {{ spine_cte }} as p
    asof left join (
        select
            {{ (dbt_features._columns(view.join_keys) + [view_ts ~ ' as ' ~ ts]) | join(',\n            ') }}
        from {{ view.relation }}
    ) as f
        on {{ (dbt_features._keys_equal(view.join_keys, 'p', 'f') + ['p.' ~ ts ~ ' >= f.' ~ ts]) | join(' and ') }}
), {{ fetch }} as materialized (
    select
        {{ (dbt_features._columns(key, 'm') + dbt_features._columns(features, 'f', outputs) + extra) | join(',\n        ') }}
    from {{ match }} as m
    left join {{ view.relation }} as f
        on {{ (dbt_features._keys_equal(view.join_keys, 'm', 'f') + ['m.' ~ matched ~ ' = ' ~ f_ts]) | join(' and ') }}
), {{ dbt_features._internal_name('view_' ~ index) }} as (
    {%- if by_row %}
    select {{ (dbt_features._columns(key, 'x') + dbt_features._columns(outputs, 'x')) | join(', ') }}
    from {{ fetch }} as x
    where {{ fetched_rows }} <= {{ spine_rows }}
    union all
    {%- endif %}
    select {{ (dbt_features._columns(key, 'x') + dbt_features._columns(outputs, 'x')) | join(', ') }}
    from {{ fetch }} as x
    {%- if by_row %}
    where {{ fetched_rows }} > {{ spine_rows }}
    {%- endif %}
    qualify row_number() over (
        partition by {{ dbt_features._columns(key, 'x') | join(', ') }}
        order by {{ dbt_features._tie_break(view, 'x', ties) }}
    ) = 1
)
{%- endmacro %}
