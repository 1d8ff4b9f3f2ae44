"""The serving adapter of dbt-features: sync into the online store (Redis), online reads, HTTP."""
