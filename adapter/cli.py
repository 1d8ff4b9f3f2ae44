"""Serving commands of ``dbt-features`` (sync, get, status), registered on the main group."""

from __future__ import annotations

import re
import sys
import time
from typing import Any

import click

from dbt_features.errors import UsageError

commands: list[click.Command] = []

# dbt_features.cli imports this module at its very end, when these are defined.
from dbt_features.cli import dbt_options, emit, handle_errors, main, open_store  # noqa: E402


class _Progress:
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


def _announce(store: Any, as_json: bool) -> None:
    """Say once where the online store is when it is the embedded server."""
    online = store.online
    if online.server is not None and not as_json:
        click.echo(online.describe(), err=True)


@click.command()
@dbt_options
@click.option("--select", "-s", "select", default=None, help="dbt selector of feature views.")
@click.option("--full-refresh", is_flag=True, help="Rebuild the views' online snapshots (atomic).")
@click.option("--from-sql", is_flag=True,
              help="Read from the models' compiled SQL instead of their relations.")
@click.option("--batch-size", type=int, default=None, help="Rows per batch (default 32768).")
@click.option("--allow-eviction", is_flag=True,
              help="Sync even into a Redis whose eviction policy can drop feature keys "
                   "(maxmemory with a policy other than noeviction); warned about on stderr.")
@handle_errors
def sync(project_dir, profiles_dir, target, vars_, as_json, select, full_refresh, from_sql,
         batch_size, allow_eviction) -> None:
    """Sync online feature views into the online store (incremental by default; either way
    it ends serving what a full refresh would)."""
    store = open_store(project_dir, profiles_dir, target, vars_)
    _announce(store, as_json)
    progress = _Progress()
    try:
        results = store.sync(select, full_refresh=full_refresh, from_sql=from_sql,
                             batch_size=batch_size, allow_eviction=allow_eviction,
                             progress=progress)
    finally:
        progress.done()
    for warning in dict.fromkeys(w for r in results for w in r.warnings):
        click.echo(warning, err=True)
    emit(as_json, {"views": [r.to_dict() for r in results]},
             lambda: "\n".join(r.summary() for r in results))


def parse_entities(given: tuple[str, ...]) -> list[dict[str, str]]:
    """``--entity customer_id=42,merchant_id=7`` (one option per entity row) to dicts of
    strings; the library converts them to the registry's key types."""
    rows = []
    for text in given:
        if not _is_unicode(text):
            raise UsageError(
                f"--entity {_shown(text)}: not valid UTF-8 text: give keys as UTF-8 (check "
                "the terminal's or the script's encoding)."
            )
        row: dict[str, str] = {}
        for part in text.split(","):
            name, sep, value = part.partition("=")
            if not sep or not name.strip():
                raise UsageError(
                    f"--entity {text!r} is not KEY=VALUE[,KEY=VALUE]: write e.g. "
                    "--entity customer_id=42 (one --entity per entity)."
                )
            row[name.strip()] = value.strip()
        rows.append(row)
    if not rows:
        raise UsageError("name at least one entity: --entity customer_id=42.")
    return rows


_INTEGER = re.compile(r"[+-]?[0-9]+")
"""An integer key as typed: ASCII digits only (Python's int() also takes '4_2' and other
scripts' digits, which are not how a key is written anywhere else)."""
_INT64 = range(-(1 << 63), 1 << 63)


def typed_entities(store: Any, refs: list[str], rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Convert command-line key values to the types the registry declares for them."""
    types: dict[str, str] = {}
    for view, _feature in store.registry.resolve(refs):
        for key in view.entity.join_keys:
            types[key.name] = key.dtype
    out = []
    for row in rows:
        typed: dict[str, Any] = {}
        for name, value in row.items():
            if types.get(name) == "int64":
                if not _INTEGER.fullmatch(value) or int(value) not in _INT64:
                    raise UsageError(
                        f"--entity {name}={value}: {name} is an integer key (int64); give a "
                        f"whole number in ASCII digits from -2^63 to 2^63-1, e.g. {name}=42."
                    )
                typed[name] = int(value)
            else:
                typed[name] = value
        out.append(typed)
    return out


def _is_unicode(text: str) -> bool:
    """False when ``text`` holds bytes that were not UTF-8 (Python passes them on as lone
    surrogates), which no key can be."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _shown(text: str) -> str:
    """``text`` for a message, bytes that were not UTF-8 written as ``\\xff``."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace")


@click.command()
@dbt_options
@click.argument("features", nargs=-1, required=True)
@click.option("--entity", "-e", "entities", multiple=True, metavar="KEY=VALUE[,KEY=VALUE]",
              help="An entity's join key(s); repeat for several entities.")
@handle_errors
def get(project_dir, profiles_dir, target, vars_, as_json, features, entities) -> None:
    """Read online features: FEATURES are views (all their features) or view:feature."""
    refs = [f if ":" in f else f"{f}:*" for f in features]
    rows = parse_entities(entities)
    store = open_store(project_dir, profiles_dir, target, vars_)
    typed = typed_entities(store, refs, rows)
    _announce(store, as_json)
    response = store.get_online_features(refs, typed)
    emit(as_json, response.to_dict() | {"entities": response.entity_rows},
             lambda: format_response(response))


def format_response(response: Any) -> str:
    width = max(len(f) for f in response.features)
    blocks = []
    for i, entity in enumerate(response.entity_rows):
        lines = [", ".join(f"{k}={v}" for k, v in entity.items())]
        for j, ref in enumerate(response.features):
            value = response.values[j][i]
            stamp = response.event_timestamps[j][i]
            shown = "NULL" if value is None else value.isoformat() if hasattr(value, "isoformat") else value
            lines.append(
                f"  {ref:<{width}}  {str(shown):<24}  {response.statuses[j][i].value:<9}  "
                f"{stamp.isoformat() if stamp else '-'}"
            )
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


@click.command()
@dbt_options
@click.option("--select", "-s", "select", default=None, help="dbt selector of feature views.")
@handle_errors
def status(project_dir, profiles_dir, target, vars_, as_json, select) -> None:
    """Per online view: last sync, watermark, keys and definition fingerprint."""
    store = open_store(project_dir, profiles_dir, target, vars_)
    _announce(store, as_json)
    states = store.online_status(select)
    emit(as_json, {"online_store": store.online.where, "views": [s.to_dict() for s in states]},
             lambda: format_status(store.online.where, states))


def format_status(where: str, states: list[Any]) -> str:
    lines = [f"Online store: {where}"]
    for s in states:
        if not s.synced:
            lines.append(f"{s.view}: never synced" + (f" (sync running: {s.running})" if s.running else ""))
            continue
        lines.append(
            f"{s.view}: last sync {s.last_sync} ({s.last_mode}), watermark {s.watermark or '-'}"
            + f", {s.keys:,} keys, generation {s.generation}, fingerprint {s.fingerprint}"
            + ("" if s.up_to_date else " (definition changed since: run dbt-features sync)")
            + (f", sync running: {s.running}" if s.running else "")
        )
        lines += [f"  warning: {w}" for w in s.warnings]
    return "\n".join(lines)


from .commands import serve, verify  # noqa: E402  (a module of their own, to keep this one short)

commands += [sync, get, status, serve, verify]
for _command in commands:  # when this module is imported first, register here
    main.add_command(_command)
