{#- The requested views, each once and in the order first requested, with their 'outputs' filled
    in: the features asked for and the column each becomes (view__feature with
    full_feature_names). Fails on an unknown feature and on an output column that two views, or
    the spine and a view, would both produce. -#}
{% macro _resolve_requests(requests, relations, spine, full_feature_names) -%}
  {%- set views = [] -%}
  {%- set by_name = {} -%}
  {%- set output_owner = {} -%}
  {%- for request in requests -%}
    {%- if request.view not in by_name -%}
      {%- set view = dbt_features._feature_view(request.view, relations[request.view]) -%}
      {%- do views.append(view) -%}
      {%- do by_name.update({request.view: view}) -%}
    {%- endif -%}
    {%- set view = by_name[request.view] -%}
    {%- if request.feature == '*' -%}
      {%- set wanted = view.features -%}
    {%- elif request.feature in view.features -%}
      {%- set wanted = [request.feature] -%}
    {%- else -%}
      {%- do dbt_features._fail("feature view '" ~ view.name ~ "' has no feature '" ~ request.feature ~ "'; it has: " ~ (view.features | join(', '))) -%}
    {%- endif -%}
    {%- set chosen = view.outputs | map(attribute='feature') | list -%}
    {%- for feature in wanted if feature not in chosen -%}
      {%- set column = (view.name ~ '__' ~ feature) if full_feature_names else feature -%}
      {%- if column in output_owner -%}
        {%- do dbt_features._fail("feature '" ~ feature ~ "' is requested from both " ~ output_owner[column] ~ " and " ~ view.name ~ "; pass full_feature_names=true or request only one") -%}
      {%- endif -%}
      {%- if column in spine.columns -%}
        {%- do dbt_features._fail("spine " ~ spine.relation ~ " already has a column '" ~ column ~ "', also requested as a feature; rename it or pass full_feature_names=true") -%}
      {%- endif -%}
      {%- do output_owner.update({column: view.name}) -%}
      {%- do view.outputs.append({'feature': feature, 'column': column}) -%}
    {%- endfor -%}
  {%- endfor -%}
  {{- return(views) -}}
{%- endmacro %}
