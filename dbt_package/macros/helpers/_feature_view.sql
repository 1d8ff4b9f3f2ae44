{#- A feature view as a dict, from its model's config.meta.feature_store and its columns.
    The key columns are 'join_keys', not 'keys': in Jinja view.keys would be the dict's method.
    'outputs' starts empty and receives {'feature': ..., 'column': ...} for each requested
    feature (see _resolve_requests). -#}
{% macro _feature_view(name, relation) -%}
  {%- set ns = namespace(node=none) -%}
  {%- for node in graph.nodes.values() if node.resource_type == 'model' and node.name == name -%}
    {%- set ns.node = node -%}
  {%- endfor -%}
  {%- set meta = ((ns.node.config or {}).meta or {}).get('feature_store') if ns.node else none -%}
  {%- if not meta -%}
    {%- do dbt_features._fail("model '" ~ name ~ "' is not a feature view (no config.meta.feature_store)") -%}
  {%- endif -%}
  {%- if not meta.get('timestamp') -%}
    {%- do dbt_features._fail("feature view '" ~ name ~ "' has no timestamp, so it cannot be joined point in time; set config.meta.feature_store.timestamp") -%}
  {%- endif -%}
  {%- set join_keys = [meta.entity] if meta.entity is string else meta.entity -%}
  {%- set columns = dbt_features._columns_by_name(relation) -%}
  {%- if not columns -%}
    {%- do dbt_features._fail("feature view '" ~ name ~ "' (" ~ relation ~ ') has no columns; is it built?') -%}
  {%- endif -%}
  {%- set reserved = join_keys + [meta.timestamp] + ([meta.created_timestamp] if meta.get('created_timestamp') else []) -%}
  {%- set features = meta.get('features') or (columns.keys() | reject('in', reserved) | list) -%}
  {%- set strings = [] -%}
  {%- for feature in features if feature in columns and columns[feature].is_string() -%}
    {%- do strings.append(feature) -%}
  {%- endfor -%}
  {{- return({
      'name': name,
      'relation': relation,
      'join_keys': join_keys,
      'columns': columns,
      'timestamp': meta.timestamp,
      'timestamp_type': columns[meta.timestamp].data_type if meta.timestamp in columns else 'timestamp',
      'created': meta.get('created_timestamp'),
      'created_type': columns[meta.created_timestamp].data_type if meta.get('created_timestamp') in columns else 'timestamp',
      'ttl': dbt_features._ttl_seconds(meta.get('ttl')),
      'features': features,
      'strings': strings,
      'outputs': [],
  }) -}}
{%- endmacro %}
