{#- Every view's join keys are spine columns of the same kind (string or not): a string key never
    equals a number, and warehouses differ in whether they cast or fail. -#}
{% macro _check_join_keys(views, spine) -%}
  {%- for view in views -%}
    {%- for key in view.join_keys if key not in spine.columns -%}
      {%- do dbt_features._fail("spine " ~ spine.relation ~ " has no column '" ~ key ~ "', the join key of feature view '" ~ view.name ~ "'; add it to the spine or drop the view") -%}
    {%- endfor -%}
    {%- for key in view.join_keys if spine.columns[key].is_string() != view.columns[key].is_string() -%}
      {%- do dbt_features._fail("spine column '" ~ key ~ "' is " ~ spine.columns[key].data_type ~ " but the key of feature view '" ~ view.name ~ "' is " ~ view.columns[key].data_type ~ "; cast one of them") -%}
    {%- endfor -%}
  {%- endfor -%}
{%- endmacro %}
