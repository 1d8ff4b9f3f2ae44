"""Commands about the feature definitions: ``validate``, ``list``, ``describe``, ``diff``.

``list`` and ``describe`` read ``target/feature_registry.json`` and import no dbt while it is
current (``FeatureStore.registry``).
"""

from __future__ import annotations

import sys

import click

from ..registry import FeatureView
from ..store import FeatureStore
from ..summary import view_summary
from . import params as p
from . import requires
from .output import emit, format_mapping


@click.command()
@p.dbt_options
@requires.store
def validate(store: FeatureStore, *, as_json: bool) -> None:
    """Check every feature definition; exit 2 on any problem.

    \b
    Example:
      dbt-features validate --json
    """
    registry = store.validate()
    n_features = sum(len(v.features) for v in registry.views)
    emit(as_json, {"ok": True, "views": len(registry.views), "features": n_features},
         lambda: f"OK: {len(registry.views)} feature views, {n_features} features.")


@click.command("list")
@p.dbt_options
@p.selection
@requires.store
def list_(store: FeatureStore, *, as_json: bool, select: str | None, exclude: str | None,
          state: str | None) -> None:
    """List feature views: entity, timestamp, ttl, online flag, features.

    \b
    Example:
      dbt-features list --select path:models/features --exclude tag:risk
    """
    views = store.select(select, exclude, state=state)
    emit(as_json, {"views": [view_summary(v) for v in views]}, lambda: format_views(views))


@click.command()
@p.dbt_options
@click.argument("ref")
@requires.store
def describe(store: FeatureStore, *, as_json: bool, ref: str) -> None:
    """Describe a view (customer_spend) or a feature (customer_spend:avg_amount_30d).

    \b
    Example:
      dbt-features describe customer_spend:avg_amount_30d
    """
    data = store.describe(ref)
    emit(as_json, data, lambda: format_mapping(data))


@click.command()
@p.dbt_options
@p.state_required
@requires.store
def diff(store: FeatureStore, *, as_json: bool, state: str) -> None:
    """Compare feature definitions with another environment's (--state).

    Exit 1 on a breaking change (removed view or feature, changed type, entity, timestamp, ttl,
    or a feature whose logic changed under the same name) unless the view's version was raised.

    \b
    Example:
      dbt-features diff --state prod-artifacts/
    """
    result = store.diff(state)
    emit(as_json, result.to_dict(), result.format)
    if result.exit_code:
        sys.exit(result.exit_code)


def format_views(views: list[FeatureView]) -> str:
    if not views:
        return "No feature views (mark a model with config.meta.feature_store)."
    return "\n\n".join(_format_view(v) for v in views)


def _format_view(v: FeatureView) -> str:
    keys = ", ".join(f"{k.name} {k.dtype}" for k in v.entity.join_keys)
    lines = [
        f"{v.name}  ({v.file})",
        f"  entity     {v.entity.name} [{keys}]",
        f"  timestamp  {v.timestamp.name if v.timestamp else '-'}"
        + (f" (created: {v.created_timestamp.name})" if v.created_timestamp else ""),
        f"  ttl        {v.ttl or 'none'}    online: {'yes' if v.online else 'no'}",
        f"  owner      {v.owner or '-'}    consumers: {', '.join(v.consumers) or '-'}",
        "  features",
    ]
    width = max(len(f.name) for f in v.features)
    lines += [f"    {f.name:<{width}}  {f.dtype:<9}  {f.description or ''}".rstrip()
              for f in v.features]
    return "\n".join(lines)
