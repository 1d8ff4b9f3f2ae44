{#- Cross-database helpers for the deterministic data generator: the same integer arithmetic
    gives the same rows on DuckDB and PostgreSQL. -#}

{% macro sample_series(n) -%}
  {{ return(adapter.dispatch('sample_series', 'dbt_features_sample')(n)) }}
{%- endmacro %}

{% macro default__sample_series(n) -%}
  generate_series(0, {{ n }} - 1) as s(i)
{%- endmacro %}

{% macro duckdb__sample_series(n) -%}
  range(0, {{ n }}) as s(i)
{%- endmacro %}

{#- A pseudo-random integer in [0, modulus) from an integer column: multiplicative hashing modulo
    a prime, exact in 64-bit integers for inputs up to 10M. -#}
{% macro sample_hash(expr, salt, modulus) -%}
  ((({{ expr }}) * 2654435761 + {{ salt }}) % 4294967291) % {{ modulus }}
{%- endmacro %}
