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
  {%- set refs = dbt_features._dbt_features_refs(features) -%}
  {%- set relations = {} -%}
  {%- for r in refs -%}
    {%- if r[0] not in relations -%}{%- do relations.update({r[0]: ref(r[0])}) -%}{%- endif -%}
  {%- endfor -%}
  {%- if not execute -%}
    {{- return('(select 1 as dbt_features_parsing) as ' ~ adapter.quote('training_set')) -}}
  {%- endif -%}

  {#- the spine -#}
  {%- set spine_cols = adapter.get_columns_in_relation(spine) -%}
  {%- set spine_by_name = {} -%}
  {%- for c in spine_cols -%}{%- do spine_by_name.update({c.name: c}) -%}{%- endfor -%}
  {%- if not spine_cols -%}
    {{- exceptions.raise_compiler_error("dbt_features.training_set: spine " ~ spine ~ " has no columns; is it built?") -}}
  {%- endif -%}
  {%- if spine_timestamp is none -%}
    {%- set found = [] -%}
    {%- for name in ['event_timestamp', 'timestamp'] if name in spine_by_name -%}{%- do found.append(name) -%}{%- endfor -%}
    {%- if found | length != 1 -%}
      {{- exceptions.raise_compiler_error("dbt_features.training_set: cannot tell the timestamp column of spine " ~ spine ~ " (" ~ (found | join(' and ') or 'no column named event_timestamp or timestamp') ~ "); pass spine_timestamp='...'") -}}
    {%- endif -%}
    {%- set spine_timestamp = found[0] -%}
  {%- endif -%}
  {%- if spine_timestamp not in spine_by_name -%}
    {{- exceptions.raise_compiler_error("dbt_features.training_set: spine " ~ spine ~ " has no column '" ~ spine_timestamp ~ "' (spine_timestamp); its columns are: " ~ (spine_by_name.keys() | join(', '))) -}}
  {%- endif -%}

  {#- the views and the requested features -#}
  {%- set views = [] -%}
  {%- set by_name = {} -%}
  {%- set outputs_seen = {} -%}
  {%- for r in refs -%}
    {%- if r[0] not in by_name -%}
      {%- set view = dbt_features._dbt_features_view(r[0], relations[r[0]]) -%}
      {%- do views.append(view) -%}
      {%- do by_name.update({r[0]: view}) -%}
    {%- endif -%}
    {%- set view = by_name[r[0]] -%}
    {%- if r[1] == '*' -%}
      {%- set wanted = view.features -%}
    {%- elif r[1] in view.features -%}
      {%- set wanted = [r[1]] -%}
    {%- else -%}
      {{- exceptions.raise_compiler_error("dbt_features.training_set: feature view '" ~ view.name ~ "' has no feature '" ~ r[1] ~ "'; it has: " ~ (view.features | join(', '))) -}}
    {%- endif -%}
    {%- for feature in wanted if feature not in view.chosen -%}
      {%- set out = (view.name ~ '__' ~ feature) if full_feature_names else feature -%}
      {%- if out in outputs_seen -%}
        {{- exceptions.raise_compiler_error("dbt_features.training_set: feature '" ~ feature ~ "' is requested from both " ~ outputs_seen[out] ~ " and " ~ view.name ~ "; pass full_feature_names=true or request only one") -}}
      {%- endif -%}
      {%- if out in spine_by_name -%}
        {{- exceptions.raise_compiler_error("dbt_features.training_set: spine " ~ spine ~ " already has a column '" ~ out ~ "', also requested as a feature; rename it or pass full_feature_names=true") -}}
      {%- endif -%}
      {%- do outputs_seen.update({out: view.name}) -%}
      {%- do view.chosen.append(feature) -%}
      {%- do view.outputs.append([feature, out]) -%}
    {%- endfor -%}
  {%- endfor -%}
  {%- for view in views -%}
    {%- for key in view.join_keys if key not in spine_by_name -%}
      {{- exceptions.raise_compiler_error("dbt_features.training_set: spine " ~ spine ~ " has no column '" ~ key ~ "', the join key of feature view '" ~ view.name ~ "'; add it to the spine or drop the view") -}}
    {%- endfor -%}
    {%- for key in view.join_keys if spine_by_name[key].is_string() != view.columns[key].is_string() -%}
      {{- exceptions.raise_compiler_error("dbt_features.training_set: spine column '" ~ key ~ "' is " ~ spine_by_name[key].data_type ~ " but the key of feature view '" ~ view.name ~ "' is " ~ view.columns[key].data_type ~ "; cast one of them") -}}
    {%- endfor -%}
  {%- endfor -%}

  {#- the query -#}
  {%- set carried = [] -%}
  {%- for c in spine_cols -%}{%- do carried.append(c.name) -%}{%- endfor -%}
  {%- set spine_cte = dbt_features._dbt_features_q('spine') -%}
(
with {{ spine_cte }} as (
    select
        {%- for c in carried %}
        {{ adapter.quote(c) }},
        {%- endfor %}
        {{ adapter.dispatch('_dbt_features_row_number', 'dbt_features')(adapter.quote(spine_timestamp)) }} as __dbt_features_row,
        {{ dbt_features._dbt_features_utc(adapter.quote(spine_timestamp), spine_by_name[spine_timestamp].data_type) }} as __dbt_features_ts
    from {{ spine }}
)
  {%- set ns = namespace(previous=spine_cte) -%}
  {%- for view in views %}
{{ adapter.dispatch('pit_step', 'dbt_features')(ns.previous, loop.index, view, carried) }}
    {%- set ns.previous = dbt_features._dbt_features_q('view_' ~ loop.index) -%}
    {%- for o in view.outputs -%}{%- do carried.append(o[1]) -%}{%- endfor -%}
  {%- endfor %}
select
    {%- for c in carried %}
    {{ ns.previous }}.{{ adapter.quote(c) }}{{ "," if not loop.last }}
    {%- endfor %}
from {{ ns.previous }}
order by {{ ns.previous }}.__dbt_features_row
) as {{ adapter.quote('training_set') }}
{%- endmacro %}


{#- One view joined to the rows so far, as one or two more CTEs (each starting with a comma). -#}

{% macro default__pit_step(previous, index, view, carried) -%}
  {%- set q = adapter.quote -%}
  {%- set f_ts = dbt_features._dbt_features_utc('f.' ~ q(view.timestamp), view.timestamp_type) -%}
, {{ dbt_features._dbt_features_q('view_' ~ index) }} as (
    select
        {%- for c in carried %}
        r.{{ q(c) }},
        {%- endfor %}
        r.__dbt_features_row,
        r.__dbt_features_ts,
        {%- for o in view.outputs %}
        r.{{ q(o[1]) }}{{ "," if not loop.last }}
        {%- endfor %}
    from (
        select
            {%- for c in carried %}
            p.{{ q(c) }},
            {%- endfor %}
            p.__dbt_features_row,
            p.__dbt_features_ts,
            {%- for o in view.outputs %}
            f.{{ q(o[0]) }} as {{ q(o[1]) }},
            {%- endfor %}
            row_number() over (
                partition by p.__dbt_features_row
                order by {{ f_ts }} desc nulls last, {{ dbt_features._dbt_features_tie_break(view) }}
            ) as __dbt_features_rn
        from {{ previous }} as p
        left join {{ view.relation }} as f
            on {% for key in view.join_keys %}p.{{ q(key) }} = f.{{ q(key) }} and {% endfor -%}
            {{ f_ts }} <= p.__dbt_features_ts
            {%- if view.ttl %}
            and {{ f_ts }} >= p.__dbt_features_ts - {{ dbt_features._dbt_features_seconds(view.ttl) }}
            {%- endif %}
    ) as r
    where r.__dbt_features_rn = 1
)
{%- endmacro %}


{% macro duckdb__pit_step(previous, index, view, carried) -%}
  {%- set q = adapter.quote -%}
  {%- set match = dbt_features._dbt_features_q('match_' ~ index) -%}
  {%- set f_ts = dbt_features._dbt_features_utc('f.' ~ q(view.timestamp), view.timestamp_type) -%}
, {{ match }} as (
    select
        {%- for c in carried %}
        p.{{ q(c) }},
        {%- endfor %}
        p.__dbt_features_row,
        p.__dbt_features_ts,
        {% if view.ttl -%}
        case when f.__dbt_features_ts >= p.__dbt_features_ts - {{ dbt_features._dbt_features_seconds(view.ttl) }}
            then f.__dbt_features_ts end
        {%- else -%}
        f.__dbt_features_ts
        {%- endif %} as __dbt_features_match
    from {{ previous }} as p
    asof left join (
        select
            {%- for key in view.join_keys %}
            {{ q(key) }},
            {%- endfor %}
            {{ dbt_features._dbt_features_utc(q(view.timestamp), view.timestamp_type) }} as __dbt_features_ts
        from {{ view.relation }}
    ) as f
        on {% for key in view.join_keys %}p.{{ q(key) }} = f.{{ q(key) }} and {% endfor -%}
        p.__dbt_features_ts >= f.__dbt_features_ts
), {{ dbt_features._dbt_features_q('view_' ~ index) }} as (
    select
        {%- for c in carried %}
        m.{{ q(c) }},
        {%- endfor %}
        m.__dbt_features_row,
        m.__dbt_features_ts,
        {%- for o in view.outputs %}
        f.{{ q(o[0]) }} as {{ q(o[1]) }}{{ "," if not loop.last }}
        {%- endfor %}
    from {{ match }} as m
    left join {{ view.relation }} as f
        on {% for key in view.join_keys %}m.{{ q(key) }} = f.{{ q(key) }} and {% endfor -%}
        m.__dbt_features_match = {{ f_ts }}
    qualify row_number() over (
        partition by m.__dbt_features_row
        order by {{ dbt_features._dbt_features_tie_break(view) }}
    ) = 1
)
{%- endmacro %}


{#- Helpers -#}

{% macro _dbt_features_q(name) -%}
  {{- '__dbt_features_' ~ name -}}
{%- endmacro %}

{#- Parse ['view:feature', 'view:*', 'a:b,c:d'] into [[view, feature], ...]. -#}
{% macro _dbt_features_refs(features) -%}
  {%- set items = [features] if features is string else features -%}
  {%- set refs = [] -%}
  {%- for item in items -%}
    {%- for part in item.split(',') if part.strip() -%}
      {%- set pieces = part.strip().split(':') -%}
      {%- if pieces | length != 2 or not pieces[0].strip() or not pieces[1].strip() -%}
        {{- exceptions.raise_compiler_error("dbt_features.training_set: feature reference '" ~ part.strip() ~ "' is not of the form view:feature or view:*") -}}
      {%- endif -%}
      {%- do refs.append([pieces[0].strip(), pieces[1].strip()]) -%}
    {%- endfor -%}
  {%- endfor -%}
  {%- if not refs -%}
    {{- exceptions.raise_compiler_error("dbt_features.training_set: no features requested") -}}
  {%- endif -%}
  {{- return(refs) -}}
{%- endmacro %}

{#- A feature view as a dict, from its node's config.meta.feature_store and its columns. -#}
{% macro _dbt_features_view(name, relation) -%}
  {%- set ns = namespace(node=none) -%}
  {%- for node in graph.nodes.values() if node.resource_type == 'model' and node.name == name -%}
    {%- set ns.node = node -%}
  {%- endfor -%}
  {%- set meta = ((ns.node.config or {}).meta or {}).get('feature_store') if ns.node else none -%}
  {%- if not meta -%}
    {{- exceptions.raise_compiler_error("dbt_features.training_set: model '" ~ name ~ "' is not a feature view (no config.meta.feature_store)") -}}
  {%- endif -%}
  {%- if not meta.get('timestamp') -%}
    {{- exceptions.raise_compiler_error("dbt_features.training_set: feature view '" ~ name ~ "' has no timestamp, so it cannot be joined point in time; set config.meta.feature_store.timestamp") -}}
  {%- endif -%}
  {%- set keys = [meta.entity] if meta.entity is string else meta.entity -%}
  {%- set columns = {} -%}
  {%- for c in adapter.get_columns_in_relation(relation) -%}{%- do columns.update({c.name: c}) -%}{%- endfor -%}
  {%- set reserved = keys + [meta.timestamp] + ([meta.created_timestamp] if meta.get('created_timestamp') else []) -%}
  {%- set features = meta.get('features') -%}
  {%- if not features -%}
    {%- set features = [] -%}
    {%- for c in columns if c not in reserved -%}{%- do features.append(c) -%}{%- endfor -%}
  {%- endif -%}
  {%- set strings = [] -%}
  {%- for f in features if f in columns and columns[f].is_string() -%}{%- do strings.append(f) -%}{%- endfor -%}
  {{- return({
      'name': name,
      'relation': relation,
      'join_keys': keys,
      'columns': columns,
      'timestamp': meta.timestamp,
      'timestamp_type': columns[meta.timestamp].data_type if meta.timestamp in columns else 'timestamp',
      'created': meta.get('created_timestamp'),
      'ttl': dbt_features._dbt_features_ttl(meta.get('ttl')),
      'features': features,
      'strings': strings,
      'chosen': [],
      'outputs': [],
  }) -}}
{%- endmacro %}

{#- '30d' -> 2592000; 0 / none -> none (no lower bound). -#}
{% macro _dbt_features_ttl(ttl) -%}
  {%- if ttl is none or ttl == 0 or ttl == '0' -%}{{ return(none) }}{%- endif -%}
  {%- set m = modules.re.match('^\\s*(\\d+)\\s*([smhdw])\\s*$', ttl | string) -%}
  {%- if not m -%}
    {{- exceptions.raise_compiler_error("dbt_features.training_set: ttl '" ~ ttl ~ "' is not a duration like 30d, 12h, 90m, 45s or 2w") -}}
  {%- endif -%}
  {%- set seconds = (m.group(1) | int) * {'s': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800}[m.group(2)] -%}
  {{- return(seconds if seconds else none) -}}
{%- endmacro %}

{#- A timestamp as naive UTC: aware ones converted, dates and other precisions cast. -#}
{% macro _dbt_features_utc(expr, data_type) -%}
  {%- set t = (data_type or '') | lower | trim -%}
  {%- if ('with time zone' in t and 'without' not in t) or t in ('timestamptz', 'timestamp_tz', 'timestampltz') -%}
    cast({{ expr }} at time zone 'UTC' as timestamp)
  {%- elif t in ('timestamp', 'timestamp without time zone', 'datetime', 'timestamp_ntz', 'timestampntz') -%}
    {{ expr }}
  {%- else -%}
    cast({{ expr }} as timestamp)
  {%- endif -%}
{%- endmacro %}

{% macro _dbt_features_seconds(n) -%}
  {{ return(adapter.dispatch('_dbt_features_seconds', 'dbt_features')(n)) }}
{%- endmacro %}

{% macro default___dbt_features_seconds(n) -%}
  interval '{{ n }} second'
{%- endmacro %}

{#- Greatest created_timestamp, then greatest feature values in declared order; NULL lowest. -#}
{% macro _dbt_features_tie_break(view) -%}
  {%- set parts = [] -%}
  {%- if view.created -%}{%- do parts.append('f.' ~ adapter.quote(view.created) ~ ' desc nulls last') -%}{%- endif -%}
  {%- for f in view.features -%}
    {%- do parts.append('f.' ~ adapter.quote(f) ~ (dbt_features._dbt_features_collate() if f in view.strings else '') ~ ' desc nulls last') -%}
  {%- endfor -%}
  {{- return(parts | join(', ')) -}}
{%- endmacro %}

{% macro _dbt_features_collate() -%}
  {{ return(adapter.dispatch('_dbt_features_collate', 'dbt_features')()) }}
{%- endmacro %}

{% macro default___dbt_features_collate() -%}{{ return('') }}{%- endmacro %}

{% macro postgres___dbt_features_collate() -%}{{ return(' collate "C"') }}{%- endmacro %}

{#- Numbering the spine's rows: ROW_NUMBER() needs an ORDER BY on some warehouses. -#}

{% macro default___dbt_features_row_number(timestamp) -%}
  row_number() over ()
{%- endmacro %}

{% macro snowflake___dbt_features_row_number(timestamp) -%}
  row_number() over (order by {{ timestamp }})
{%- endmacro %}

{% macro spark___dbt_features_row_number(timestamp) -%}
  row_number() over (order by {{ timestamp }})
{%- endmacro %}

{% macro databricks___dbt_features_row_number(timestamp) -%}
  row_number() over (order by {{ timestamp }})
{%- endmacro %}

{% macro bigquery___dbt_features_seconds(n) -%}
  interval {{ n }} second
{%- endmacro %}
