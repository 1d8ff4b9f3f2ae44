{#- The view rows some spine row can match, as conditions on the view's UTC event time `event`:
    at most the latest spine time and, with a ttl, at least the earliest less the ttl (as
    dbt_features/pit.py's spine_span). A row outside is matched by no spine row, or is too old
    for every one; leaving it out only saves the work. -#}
{% macro _spine_span(event, spine_cte, view) -%}
  {%- set ts = adapter.quote(dbt_features._internal_name('ts')) -%}
  {{ event }} <= (select max({{ ts }}) from {{ spine_cte }})
  {%- if view.ttl %}
            and {{ event }} >= (select min({{ ts }}) from {{ spine_cte }}) - {{ dbt_features._interval_seconds(view.ttl) }}
  {%- endif -%}
{%- endmacro %}
