{#-
  served_values_match(model, view, max_mismatch_rate=0, as_known_at=false): a generic test on a
  served-value log (the rows `dbt-features served export` writes, as a model or source), e.g.

      models:
        - name: served_customer_spend
          data_tests:
            - dbt_features.served_values_match:
                arguments:
                  view: customer_spend
                  max_mismatch_rate: 0.001

  The log is the spine of dbt_features.training_set (spine_timestamp request_time,
  full_feature_names): each served row gets the view's values at its request time. A served
  value matches when the request was served the view's row and it equals the offline value
  (NULL equal to NULL), or when it was served no row (not_found, expired) and the view had none
  in its ttl then. Only features the request asked for (served_features) count. The test
  returns one row per feature whose mismatch rate is above max_mismatch_rate: it fails.
  `dbt-features verify --served` counts the same mismatches and says why.
-#}
{% macro test_served_values_match(model, view, max_mismatch_rate=0, as_known_at=false) -%}
  {{ return(adapter.dispatch('test_served_values_match', 'dbt_features')(model, view, max_mismatch_rate, as_known_at)) }}
{%- endmacro %}


{% macro default__test_served_values_match(model, view, max_mismatch_rate, as_known_at) -%}
  {%- set relation = ref(view) -%}
  {%- if as_known_at -%}
    {%- set replayed = dbt_features.training_set(model, [view ~ ':*'], spine_timestamp='request_time', full_feature_names=true, as_known_at=true) -%}
  {%- else -%}
    {%- set replayed = dbt_features.training_set(model, [view ~ ':*'], spine_timestamp='request_time', full_feature_names=true) -%}
  {%- endif -%}
  {%- if not execute -%}
    {{- return('select 1 as dbt_features_parsing where 1 = 0') -}}
  {%- endif -%}
  {%- set info = dbt_features._feature_view(view, relation) -%}
  {%- set log_columns = dbt_features._columns_by_name(model) -%}
  {%- set at = dbt_features._utc_timestamp('r.' ~ adapter.quote('request_time'), log_columns['request_time'].data_type) -%}
  {%- set f_ts = dbt_features._utc_timestamp('f.' ~ adapter.quote(info.timestamp), info.timestamp_type) -%}
  {%- set window = dbt_features._keys_equal(info.join_keys, 'r', 'f') + [f_ts ~ ' <= ' ~ at] -%}
  {%- if info.ttl -%}
    {%- do window.append(f_ts ~ ' >= ' ~ at ~ ' - ' ~ dbt_features._interval_seconds(info.ttl)) -%}
  {%- endif -%}
  {%- if as_known_at and info.created -%}
    {%- set created = 'f.' ~ adapter.quote(info.created) -%}
    {%- do window.append('(' ~ created ~ ' is null or ' ~ dbt_features._utc_timestamp(created, info.created_type) ~ ' <= ' ~ at ~ ')') -%}
  {%- endif -%}
  {%- set compared = info.features | select('in', log_columns) | list -%}
with {{ adapter.quote('replayed') }} as (
    select * from {{ replayed }}
),
{{ adapter.quote('judged') }} as (
    select
        r.*,
        exists (select 1 from {{ relation }} as f where {{ window | join(' and ') }}) as {{ adapter.quote('offline_row') }}
    from {{ adapter.quote('replayed') }} as r
),
{{ adapter.quote('per_feature') }} as (
  {%- for feature in compared %}
    select
        '{{ feature }}' as {{ adapter.quote('feature') }},
        count(*) as {{ adapter.quote('compared') }},
        coalesce(sum(case
            when {{ adapter.quote('status') }} = 'present'
                then case when {{ adapter.quote('offline_row') }} and {{ adapter.quote(feature) }} is not distinct from {{ adapter.quote(view ~ '__' ~ feature) }} then 0 else 1 end
            when {{ adapter.quote('offline_row') }} then 1
            else 0
        end), 0) as {{ adapter.quote('mismatched') }}
    from {{ adapter.quote('judged') }}
    where {{ dbt_features._served_asked(adapter.quote('served_features'), feature) }}
    {% if not loop.last %}union all{% endif %}
  {%- endfor %}
)
select
    '{{ view }}' as {{ adapter.quote('view') }},
    {{ adapter.quote('feature') }},
    {{ adapter.quote('compared') }},
    {{ adapter.quote('mismatched') }},
    1.0 * {{ adapter.quote('mismatched') }} / {{ adapter.quote('compared') }} as {{ adapter.quote('mismatch_rate') }}
from {{ adapter.quote('per_feature') }}
where {{ adapter.quote('compared') }} > 0
    and 1.0 * {{ adapter.quote('mismatched') }} / {{ adapter.quote('compared') }} > {{ max_mismatch_rate | float }}
{%- endmacro %}
