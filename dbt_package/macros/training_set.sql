{#-
  dbt_features.training_set(spine, features, spine_timestamp=none, full_feature_names=false)

  A point-in-time training set, for use after FROM:
      select * from {{ dbt_features.training_set(ref('labels'), ['customer_spend:*'], spine_timestamp='scored_at') }}

  The same query as dbt-features' Python path (dbt_features/pit.py), written out in Jinja, and
  kept equal to it by a differential test on random data (tests/test_dbt_package.py):
  for each spine row and view, the row with the same key and the latest timestamp <= the spine
  timestamp and >= it minus the view's ttl; ties to the greatest created_timestamp (NULL lowest),
  then the greatest feature values in declared order (NULL lowest, strings by code point).
  Feature views are read from each model's config.meta.feature_store in dbt's graph.
-#}

{% macro training_set(spine, features, spine_timestamp=none, full_feature_names=false) -%}
  {{ return(adapter.dispatch('training_set', 'dbt_features')(spine, features, spine_timestamp, full_feature_names)) }}
{%- endmacro %}


{% macro default__training_set(spine, features, spine_timestamp, full_feature_names) -%}
  {%- set requests = dbt_features._parse_requests(features) -%}
  {#- ref() runs while dbt parses too, which is how dbt learns the model depends on the views. -#}
  {%- set relations = {} -%}
  {%- for request in requests -%}
    {%- if request.view not in relations -%}{%- do relations.update({request.view: ref(request.view)}) -%}{%- endif -%}
  {%- endfor -%}
  {%- if not execute -%}
    {{- return('(select 1 as dbt_features_parsing) as ' ~ adapter.quote('training_set')) -}}
  {%- endif -%}

  {%- set spine = dbt_features._spine(spine, spine_timestamp) -%}
  {%- set views = dbt_features._resolve_requests(requests, relations, spine, full_feature_names) -%}
  {%- do dbt_features._check_join_keys(views, spine) -%}
  {%- set spine_cte = dbt_features._internal_name('spine') -%}
  {%- set ts = adapter.quote(spine.timestamp) -%}
(
with {{ spine_cte }} as (
    select
        {{ (dbt_features._columns(spine.names) + [
            dbt_features._spine_row_number(ts) ~ ' as __dbt_features_row',
            dbt_features._utc_timestamp(ts, spine.timestamp_type) ~ ' as __dbt_features_ts',
        ]) | join(',\n        ') }}
    from {{ spine.relation }}
)
  {%- set ns = namespace(previous=spine_cte, carried=spine.names) -%}
  {%- for view in views %}
{{ dbt_features._pit_join(ns.previous, loop.index, view, ns.carried) }}
    {%- set ns.previous = dbt_features._internal_name('view_' ~ loop.index) -%}
    {%- set ns.carried = ns.carried + (view.outputs | map(attribute='column') | list) -%}
  {%- endfor %}
select
    {{ dbt_features._columns(ns.carried, ns.previous) | join(',\n    ') }}
from {{ ns.previous }}
order by {{ ns.previous }}.__dbt_features_row
) as {{ adapter.quote('training_set') }}
{%- endmacro %}
