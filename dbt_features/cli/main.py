"""The ``dbt-features`` command group; every command is registered here, in one place.

Commands live in one module per group (``definitions``, ``training_sets``, ``online_store``,
``serving``), declare their options from ``params`` and run under ``requires.store``. Loading
the CLI imports neither dbt nor the serving modules: a command imports what it uses when it runs.
"""

from __future__ import annotations

import logging
import sys

import click

from . import catalog, definitions, online_store, served, serving, training_sets


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dbt-features")
def main() -> None:
    """dbt-features: feature views defined as dbt models, for training and serving."""
    if sys.stderr.isatty():
        # On a terminal, say what slow steps (a dbt parse, a sync) are doing.
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger = logging.getLogger("dbt_features")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


for _command in (
    definitions.validate,
    definitions.list_,
    definitions.describe,
    definitions.diff,
    training_sets.training_set,
    training_sets.sql,
    online_store.sync,
    online_store.get,
    online_store.status,
    serving.serve,
    serving.verify,
    catalog.catalog,
    served.served,
):
    main.add_command(_command)
