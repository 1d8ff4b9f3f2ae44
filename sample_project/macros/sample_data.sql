{#- Cross-database helpers for the deterministic data generator: the same integer arithmetic
    gives the same rows on DuckDB, PostgreSQL and Spark. -#}

{% macro sample_series(n) -%}
  {{ return(adapter.dispatch('sample_series', 'dbt_features_sample')(n)) }}
{%- endmacro %}

{% macro default__sample_series(n) -%}
  generate_series(0, {{ n }} - 1) as s(i)
{%- endmacro %}

{% macro duckdb__sample_series(n) -%}
  range(0, {{ n }}) as s(i)
{%- endmacro %}

{#- Spark's `range` table function, its column renamed as on DuckDB. -#}
{% macro spark__sample_series(n) -%}
  range(0, {{ n }}) as s(i)
{%- endmacro %}

{#- The 64-bit float type's name: Spark has no `double precision`. -#}
{% macro sample_double() -%}
  {{ return(adapter.dispatch('sample_double', 'dbt_features_sample')()) }}
{%- endmacro %}

{% macro default__sample_double() -%}
  double precision
{%- endmacro %}

{% macro spark__sample_double() -%}
  double
{%- endmacro %}

{#- A pseudo-random integer in [0, modulus) from an integer column: multiplicative hashing modulo
    a prime, exact in 64-bit integers for inputs up to 10M (the same on all three engines: the
    constants are 64-bit literals, the operands non-negative). -#}
{% macro sample_hash(expr, salt, modulus) -%}
  ((({{ expr }}) * 2654435761 + {{ salt }}) % 4294967291) % {{ modulus }}
{%- endmacro %}
