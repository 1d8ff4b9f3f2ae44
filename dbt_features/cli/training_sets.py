"""Commands building point-in-time training sets: ``training-set`` and ``sql``."""

from __future__ import annotations

import click

from ..store import FeatureStore
from . import params as p
from . import requires
from .output import emit


@click.command("training-set")
@p.dbt_options
@p.training_options
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              help="Where to write the training set: a .parquet or .csv file.")
@requires.store
def training_set(store: FeatureStore, *, as_json: bool, spine: str,
                 spine_timestamp: str | None, features: tuple[str, ...],
                 full_feature_names: bool, as_known_at: bool, output: str) -> None:
    """Build a point-in-time training set: each spine row with every feature as of its time.

    \b
    Example:
      dbt-features training-set --spine labels --spine-timestamp scored_at \\
        -f 'customer_spend:*,merchant_risk:merchant_fraud_rate_30d' -o train.parquet
    """
    from ..training import check_output, write_output

    check_output(output)
    table = store.get_training_set(spine, list(features), spine_timestamp=spine_timestamp,
                                   full_feature_names=full_feature_names, as_known_at=as_known_at)
    write_output(table, output)
    data = {"output": output, "rows": table.num_rows, "columns": table.column_names,
            "as_known_at": as_known_at}
    emit(as_json, data, lambda: f"Wrote {table.num_rows} rows x {table.num_columns} columns "
                                f"to {output}.")


@click.command("sql")
@p.dbt_options
@p.training_options
@click.option("--dialect", default=None,
              help="duckdb, postgres, snowflake, bigquery, spark or trino (default: the target's).")
@requires.store
def sql(store: FeatureStore, *, as_json: bool, spine: str, spine_timestamp: str | None,
        features: tuple[str, ...], full_feature_names: bool, as_known_at: bool,
        dialect: str | None) -> None:
    """Print the training-set SQL for a spine model, to run or paste anywhere.

    \b
    Example:
      dbt-features sql --spine labels --spine-timestamp scored_at -f 'customer_spend:*' \\
        --dialect snowflake
    """
    text = store.training_sql(spine, list(features), dialect=dialect,
                              spine_timestamp=spine_timestamp,
                              full_feature_names=full_feature_names, as_known_at=as_known_at)
    emit(as_json, {"dialect": dialect or store.registry.dialect, "as_known_at": as_known_at,
                   "sql": text}, lambda: text)
