"""The ``served`` command group: the served-value log that ``serve --log-served`` keeps in the
online store's Redis (``served export``)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..store import FeatureStore
from . import params as p
from . import requires
from .online_store import announce
from .output import emit


@click.group()
def served() -> None:
    """The served-value log (what `serve --log-served` recorded)."""


class _ExportProgress:
    """One live line on stderr, only on a terminal."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if self.enabled:
            self.shown = True
            click.echo(f"\r\033[K  {done:,} of {total:,} served-log entries exported…", nl=False,
                       err=True)

    def done(self) -> None:
        if self.shown:
            click.echo("\r\033[K", nl=False, err=True)


@served.command("export")
@p.dbt_options
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False),
              metavar="DIR", help="Folder to write DIR/<view>/*.parquet in (created if missing).")
@requires.store
def export(store: FeatureStore, *, as_json: bool, output: str) -> None:
    """Move the served-value log from Redis into Parquet files, one folder per feature view
    (exported entries are deleted from Redis; run it again after an interruption: nothing is
    lost or written twice).

    \b
    Example:
      dbt-features served export --output served_log/
    """
    from ..serving.served_export import check_output

    check_output(Path(output))  # before connecting: a bad folder fails at once
    announce(store, as_json)
    progress = _ExportProgress()
    try:
        result = store.export_served(output, progress=progress)
    finally:
        progress.done()
    emit(as_json, result.to_dict(), result.summary)
