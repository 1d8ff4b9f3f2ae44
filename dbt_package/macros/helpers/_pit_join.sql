{#- One feature view joined point in time to the spine (the CTE named spine_cte), as one or two
    more CTEs, each starting with a comma; the last, _internal_name('view_' ~ index), holds the
    columns of key (see _view_key) and the view's requested features, one row per spine row
    (per distinct key where key is not the row number). With as_known_at, a row of a view with a
    created_timestamp is a candidate only if it was created by the spine time (see _known_at). -#}
{% macro _pit_join(spine_cte, index, view, key, as_known_at=false) -%}
  {{ return(adapter.dispatch('_pit_join', 'dbt_features')(spine_cte, index, view, key, as_known_at)) }}
{%- endmacro %}


{#- Portable: see _window_join. -#}
{% macro default___pit_join(spine_cte, index, view, key, as_known_at=false) -%}
  {{- dbt_features._window_join(spine_cte, index, view, key, as_known_at) -}}
{%- endmacro %}


{#- DuckDB: ASOF JOIN finds the latest view time at or before the spine time per key (the ttl
    applied to what it found), then a plain join fetches that time's rows (materialized: read
    up to three times), and the tie-break keeps one. The tie-break (a window over every row) is
    skipped when no matched time held two rows, which shows as no more fetched rows than spine
    rows; keyed by join keys and time, the spine's duplicates share a key, so it always ranks.
    The ASOF join sorts only the view rows some spine row can match (event time within the
    spine's times, less the ttl: as dbt_features/pit.py's spine_span).
    As known at, for a view with a created_timestamp, ASOF matches each row's known time (the
    later of its event and created times) and returns the greatest event time among the key's
    rows known by then (a running max), and the fetch keeps the rows known at the spine time
    (as dbt_features/pit_known.py). -#}
{% macro duckdb___pit_join(spine_cte, index, view, key, as_known_at=false) -%}
  {%- set known = as_known_at and view.created -%}
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
  {%- set carried = [dbt_features._internal_name('ts')] if known else [] -%}
  {%- set known_ts = adapter.quote(dbt_features._internal_name('known')) -%}
  {%- set event_ts = adapter.quote(dbt_features._internal_name('event')) -%}
, {{ match }} as (
    select
        {{ dbt_features._columns((key + view.join_keys + carried) | unique | list, 'p') | join(',\n        ') }},
        {% if view.ttl -%}
        case when f.{{ ts }} >= p.{{ ts }} - {{ dbt_features._interval_seconds(view.ttl) }}
            then f.{{ ts }} end
        {%- else -%}
        f.{{ ts }}
        {%- endif %} as {{ matched }}
    from {{ spine_cte }} as p
    asof left join (
    {%- if known %}
        {%- set created_ts = dbt_features._utc_timestamp(adapter.quote(view.created), view.created_type) %}
        select
            {{ (dbt_features._columns(view.join_keys) + [known_ts]) | join(', ') }},
            max({{ event_ts }}) over (
                partition by {{ dbt_features._columns(view.join_keys) | join(', ') }}
                order by {{ known_ts }} range between unbounded preceding and current row
            ) as {{ ts }}
        from (
            select
                {{ (dbt_features._columns(view.join_keys) + [view_ts ~ ' as ' ~ event_ts]) | join(',\n                ') }},
                case when {{ created_ts }} > {{ view_ts }} then {{ created_ts }} else {{ view_ts }} end as {{ known_ts }}
            from {{ view.relation }}
            where {{ view_ts }} is not null
        ) as k
    {%- else %}
        select
            {{ (dbt_features._columns(view.join_keys) + [view_ts ~ ' as ' ~ ts]) | join(',\n            ') }}
        from {{ view.relation }}
        where {{ dbt_features._spine_span(view_ts, spine_cte, view) }}
    {%- endif %}
    ) as f
        on {{ (dbt_features._keys_equal(view.join_keys, 'p', 'f') + ['p.' ~ ts ~ ' >= f.' ~ (known_ts if known else ts)]) | join(' and ') }}
), {{ fetch }} as materialized (
    select
        {{ (dbt_features._columns(key, 'm') + dbt_features._columns(features, 'f', outputs) + extra) | join(',\n        ') }}
    from {{ match }} as m
    left join {{ view.relation }} as f
        on {{ (dbt_features._keys_equal(view.join_keys, 'm', 'f') + ['m.' ~ matched ~ ' = ' ~ f_ts]) | join(' and ') }}
        {%- if known %}
        and {{ dbt_features._known_at(view, 'f', 'm.' ~ ts) }}
        {%- endif %}
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
