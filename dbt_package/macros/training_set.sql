{#-
  dbt_features.training_set(spine, features, spine_timestamp=none, full_feature_names=false,
                            as_known_at=false)

  A point-in-time training set, for use after FROM:
      select * from {{ dbt_features.training_set(ref('labels'), ['customer_spend:*'], spine_timestamp='scored_at') }}

  The same query as dbt-features' Python path (dbt_features/pit.py), written out in Jinja, and
  kept equal to it by a differential test on random data (tests/test_dbt_package.py):
  for each spine row and view, the row with the same key and the latest timestamp <= the spine
  timestamp and >= it minus the view's ttl; ties to the greatest created_timestamp (NULL lowest),
  then the greatest feature values in declared order (NULL lowest, strings by code point).
  With as_known_at=true, a row of a view with a created_timestamp is a candidate only if it was
  created at or before the spine timestamp (NULL created: kept); see docs/training-sets.md.
  Feature views are read from each model's config.meta.feature_store in dbt's graph.

  Shape: the spine as a CTE numbering its rows; one CTE per view with that view's features for
  each spine row (see _pit_join); then the spine's columns and every view's features, joined
  on the spine row number and returned in its order. Where a CTE may be computed once per
  reader (see _ctes_computed_once), the numbers could differ between readers: there a view's
  CTE is keyed by its join keys and the spine timestamp instead (see _view_key).
-#}

{% macro training_set(spine, features, spine_timestamp=none, full_feature_names=false, as_known_at=false) -%}
  {{ return(adapter.dispatch('training_set', 'dbt_features')(spine, features, spine_timestamp, full_feature_names, as_known_at)) }}
{%- endmacro %}


{% macro default__training_set(spine, features, spine_timestamp, full_feature_names, as_known_at=false) -%}
  {%- if as_known_at is not boolean -%}
    {%- do dbt_features._fail("as_known_at must be true or false, not '" ~ as_known_at ~ "'") -%}
  {%- endif -%}
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
  {%- set row = dbt_features._columns([dbt_features._internal_name('row')])[0] -%}
  {%- set ts = adapter.quote(spine.timestamp) -%}
  {%- set columns = dbt_features._columns(spine.names, spine_cte) -%}
  {%- for view in views -%}
    {%- do columns.extend(dbt_features._columns(view.outputs | map(attribute='column') | list, dbt_features._internal_name('view_' ~ loop.index))) -%}
  {%- endfor -%}
(
with {{ spine_cte }} as {{ 'materialized ' if dbt_features._ctes_computed_once() }}(
    select
        {{ (dbt_features._columns(spine.names) + [
            dbt_features._spine_row_number(ts) ~ ' as ' ~ row,
            dbt_features._utc_timestamp(ts, spine.timestamp_type) ~ ' as ' ~ dbt_features._columns([dbt_features._internal_name('ts')])[0],
        ]) | join(',\n        ') }}
    from {{ spine.relation }}
)
  {%- for view in views %}
{{ dbt_features._pit_join(spine_cte, loop.index, view, dbt_features._view_key(view), as_known_at) }}
  {%- endfor %}
select
    {{ columns | join(',\n    ') }}
from {{ spine_cte }}
  {%- for view in views %}
    {%- set view_cte = dbt_features._internal_name('view_' ~ loop.index) %}
left join {{ view_cte }}
    on {{ dbt_features._keys_equal(dbt_features._view_key(view), spine_cte, view_cte) | join(' and ') }}
  {%- endfor %}
order by {{ spine_cte }}.{{ row }}
) as {{ adapter.quote('training_set') }}
{%- endmacro %}
