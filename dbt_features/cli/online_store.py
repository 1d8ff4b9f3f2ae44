"""Commands on the online store: ``sync``, ``get``, ``status``.

``get`` and ``status`` read ``target/feature_registry.json`` and import no dbt while it is
current; the serving modules are imported when a command runs, not when the CLI loads.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import click

from ..store import FeatureStore
from . import params as p
from . import requires
from .entities import parse_entities, typed_entities
from .output import emit

if TYPE_CHECKING:
    from ..serving.online import OnlineResponse, ViewStatus


class _SyncProgress:
    """A one-line live counter on stderr, only when stderr is a terminal."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, view: str, rows: int) -> None:
        now = time.monotonic()
        if self.enabled and now - self.last > 0.1:
            self.last = now
            click.echo(f"\r  {view}: {rows:,} entities synced…", nl=False, err=True)

    def done(self) -> None:
        if self.enabled and self.last:
            click.echo("\r\033[K", nl=False, err=True)
            self.last = 0.0


def announce(store: FeatureStore, as_json: bool) -> None:
    """Say once where the online store is when it is the embedded server."""
    online = store.online
    if online.server is not None and not as_json:
        click.echo(online.describe(), err=True)


@click.command()
@p.dbt_options
@p.selection
@click.option("--full-refresh", is_flag=True, help="Rebuild the views' online snapshots (atomic).")
@click.option("--from-sql", is_flag=True,
              help="Read from the models' compiled SQL instead of their relations.")
@click.option("--batch-size", type=int, default=None, help="Rows per batch (default 32768).")
@click.option("--allow-eviction", is_flag=True,
              help="Sync even into a Redis whose eviction policy can drop feature keys "
                   "(maxmemory with a policy other than noeviction); warned about on stderr.")
@requires.store
def sync(store: FeatureStore, *, as_json: bool, select: str | None, exclude: str | None,
         state: str | None, full_refresh: bool, from_sql: bool, batch_size: int | None,
         allow_eviction: bool) -> None:
    """Sync online feature views into the online store (incremental by default; either way
    it ends serving what a full refresh would).

    \b
    Example:
      dbt-features sync --select customer_spend --full-refresh
    """
    announce(store, as_json)
    progress = _SyncProgress()
    try:
        results = store.sync(select, exclude=exclude, state=state, full_refresh=full_refresh,
                             from_sql=from_sql, batch_size=batch_size,
                             allow_eviction=allow_eviction, progress=progress)
    finally:
        progress.done()
    for warning in dict.fromkeys(w for r in results for w in r.warnings):
        click.echo(warning, err=True)
    emit(as_json, {"views": [r.to_dict() for r in results]},
         lambda: "\n".join(r.summary() for r in results))


@click.command()
@p.dbt_options
@click.argument("features", nargs=-1, required=True)
@click.option("--entity", "-e", "entities", multiple=True, metavar="KEY=VALUE[,KEY=VALUE]",
              help="An entity's join key(s); repeat for several entities.")
@requires.store
def get(store: FeatureStore, *, as_json: bool, features: tuple[str, ...],
        entities: tuple[str, ...]) -> None:
    """Read online features: FEATURES are views (all their features) or view:feature.

    \b
    Example:
      dbt-features get customer_spend merchant_risk:merchant_fraud_rate_30d \\
        --entity customer_id=42,merchant_id=7
    """
    refs = [f if ":" in f else f"{f}:*" for f in features]
    rows = parse_entities(entities)
    typed = typed_entities(store.registry, refs, rows)
    announce(store, as_json)
    response = store.get_online_features(refs, typed)
    emit(as_json, response.to_dict() | {"entities": response.entity_rows},
         lambda: format_response(response))


def format_response(response: OnlineResponse) -> str:
    width = max(len(f) for f in response.features)
    blocks = []
    for i, entity in enumerate(response.entity_rows):
        lines = [", ".join(f"{k}={v}" for k, v in entity.items())]
        for j, ref in enumerate(response.features):
            value = response.values[j][i]
            stamp = response.event_timestamps[j][i]
            text = ("NULL" if value is None else
                    value.isoformat() if hasattr(value, "isoformat") else value)
            lines.append(
                f"  {ref:<{width}}  {str(text):<24}  {response.statuses[j][i].value:<9}  "
                f"{stamp.isoformat() if stamp else '-'}"
            )
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


@click.command()
@p.dbt_options
@p.selection
@requires.store
def status(store: FeatureStore, *, as_json: bool, select: str | None, exclude: str | None,
           state: str | None) -> None:
    """Per online view: last sync, watermark, keys and definition fingerprint.

    \b
    Example:
      dbt-features status --json
    """
    announce(store, as_json)
    states = store.online_status(select, exclude=exclude, state=state)
    emit(as_json, {"online_store": store.online.where, "views": [s.to_dict() for s in states]},
         lambda: format_status(store.online.where, states))


def format_status(where: str, states: list[ViewStatus]) -> str:
    lines = [f"Online store: {where}"]
    for s in states:
        if not s.synced:
            lines.append(f"{s.view}: never synced"
                         + (f" (sync running: {s.running})" if s.running else ""))
            continue
        lines.append(
            f"{s.view}: last sync {s.last_sync} ({s.last_mode}), watermark {s.watermark or '-'}"
            + f", {s.keys:,} keys, generation {s.generation}, fingerprint {s.fingerprint}"
            + ("" if s.up_to_date else " (definition changed since: run dbt-features sync)")
            + (f", sync running: {s.running}" if s.running else "")
        )
        lines += [f"  warning: {w}" for w in s.warnings]
    return "\n".join(lines)
