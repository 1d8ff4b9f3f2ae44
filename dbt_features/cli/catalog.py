"""The ``catalog`` command: write the feature catalog, a static site, for people to browse."""

from __future__ import annotations

import sys

import click

from ..catalog import SiteWritten
from ..store import FeatureStore
from . import params as p
from . import requires
from .output import emit


@click.command()
@p.dbt_options
@click.option("--output", "-o", "output", default=None, type=click.Path(),
              help="Folder to write the site to (default: target/feature_catalog), replaced "
                   "whole.")
@click.option("--state", "state", default=None, envvar="DBT_STATE", type=click.Path(),
              help="Folder of another environment's dbt artifacts (as for `diff`): each page "
                   "shows what changed against it.")
@click.option("--online-status", is_flag=True,
              help="Read the online store's status (last sync, keys, watermark) into the pages.")
@requires.store
def catalog(store: FeatureStore, *, as_json: bool, output: str | None, state: str | None,
            online_status: bool) -> None:
    """Write the feature catalog: a static site to search and browse (open its index.html).

    `dbt-features serve` serves the same catalog at /, with live online status.

    \b
    Example:
      dbt-features catalog --json
    """
    progress = _progress if sys.stderr.isatty() and not as_json else None
    written = store.catalog(output, state=state, online_status=online_status, progress=progress)
    emit(as_json, written.to_dict(), lambda: _text(written))


def _progress(done: int, total: int) -> None:
    click.echo(f"\rWriting the catalog: {done:,}/{total:,} pages", err=True,
               nl=done == total)


def _text(written: SiteWritten) -> str:
    return (f"Wrote the feature catalog: {written.views:,} views, {written.features:,} features, "
            f"{written.files:,} files, {written.bytes / 1e6:.1f} MB in {written.seconds:.2f} s "
            f"to {written.path}/\nOpen {written.path}/index.html in a browser.")
