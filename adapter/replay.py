"""Replay of served values (``dbt-features verify --served``): was each value a model was served
the value its training set says it had at that instant?

The served rows of a view (``replay_source``) become a spine of (join keys, ``request_time``);
the training-set engine (``dbt_features.training.get_training_set``) computes in the warehouse
each feature's value at that time, with the view's timestamp and created-timestamp columns as
more outputs so the offline row's event and created times come from the same join (as
``verify`` does). The comparison then runs on whole Arrow columns, never row by row in Python:
only the worst examples become Python values.

Semantics, as ``verify``'s (``value_compare``): a served ``expired`` or ``not_found`` row
equals an offline NULL row (no row in the ttl); doubles exactly, NaN equal to NaN; a NULL value
served by one side only is a mismatch. Only the features the request asked for
(``served_features``) are compared. The likely cause of a mismatch, the first that fits, in
this order:

* ``late_arrival``: the offline row's ``created_timestamp`` is after the request (it was not
  knowable then; ``as_known_at`` leaves such rows out);
* ``served_after_ttl``: served ``present``, no offline row, and the served row is older than
  the current definition's ttl at the request time;
* ``sync_lag``: the offline row at that time is newer than the served one, or the server
  served none (missing, expired) while offline had one;
* ``definition_changed``: the generation served was synced from another definition
  (fingerprint) than the current one;
* ``served_before_created`` (``as_known_at`` only): served ``present`` and newer than every
  row created by the request (none, or an older one): the served row's ``created_timestamp``
  is after the request, so it was stamped later than it reached the warehouse;
* ``unknown``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dbt_features.errors import UsageError
from dbt_features.registry import Feature, Registry
from dbt_features.warehouse import Warehouse

from .micros import iso_micros
from .replay_report import CAUSES, FeatureReplay, ReplayReport, ServedMismatch, ViewReplay
from .replay_source import ServedRows
from .value_compare import micros, same_values

AT = "request_time"
EXAMPLES = 10
"""Worst mismatches kept per feature (all are counted)."""


@dataclass(frozen=True)
class ReplayOptions:
    as_known_at: bool = False
    """Offline rows count only once created (``created_timestamp <= request_time``)."""
    max_mismatch_rate: float = 0.0
    examples: int = EXAMPLES

    def __post_init__(self) -> None:
        rate = self.max_mismatch_rate
        if not (isinstance(rate, (int, float)) and 0.0 <= rate <= 1.0):
            raise UsageError(f"--max-mismatch-rate {rate}: give a rate from 0 to 1, e.g. 0.01 "
                             "for at most 1% of a feature's served values.")


@dataclass(frozen=True)
class _Rows:
    """What every feature of one view shares, per served row, as numpy arrays."""

    present: np.ndarray
    offline_row: np.ndarray
    cause: np.ndarray
    request_us: np.ndarray
    served_us: np.ndarray
    offline_us: np.ndarray


def replay(logs: list[ServedRows], registry: Registry, warehouse: Callable[[], Warehouse],
           options: ReplayOptions) -> ReplayReport:
    """Each log's served values against the training set at their request times, a view at a
    time (one training-set query per view)."""
    views = []
    for log in logs:
        started = time.perf_counter()
        offline = offline_values(registry, warehouse, log, options.as_known_at)
        views.append(replace(_compare(log, offline, options),
                             seconds=round(time.perf_counter() - started, 3)))
    now = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    return ReplayReport(options.as_known_at, float(options.max_mismatch_rate), tuple(views), now)


def offline_values(registry: Registry, warehouse: Callable[[], Warehouse], log: ServedRows,
                   as_known_at: bool) -> pa.Table:
    """Each served row's offline values at its request time (columns ``view__feature``, plus
    the view's timestamp and created timestamp), in the log's order."""
    from dbt_features.training import get_training_set

    view = log.view
    extra = [c for c in (view.timestamp, view.created_timestamp) if c is not None]
    outputs = view.features + tuple(Feature(c.name, c.dtype, c.data_type, None, "") for c in extra
                                    if all(f.name != c.name for f in view.features))
    registry = replace(registry, views=tuple(
        replace(v, features=outputs) if v.name == view.name else v for v in registry.views))
    spine = log.table.select([*view.entity.key_names, AT])
    return get_training_set(registry, warehouse, spine, [f"{view.name}:*"], spine_timestamp=AT,
                            full_feature_names=True, as_known_at=as_known_at)


def _compare(log: ServedRows, offline: pa.Table, options: ReplayOptions) -> ViewReplay:
    view, table = log.view, log.table
    rows = _shared(log, offline, options)
    requested = _requested(table.column("served_features"))
    features = []
    served_names = set(requested)
    for feature in view.features:
        if feature.name not in table.column_names:
            continue
        asked = requested.get(feature.name)
        if asked is None:
            continue  # never asked for: nothing was served to compare
        same = same_values(offline.column(f"{view.name}__{feature.name}"),
                           table.column(feature.name), feature.dtype)
        consistent = np.where(rows.present, rows.offline_row & same, ~rows.offline_row)
        wrong = asked & ~consistent
        names, counts = np.unique(rows.cause[wrong], return_counts=True)
        causes = {CAUSES[i]: int(n) for i, n in sorted(zip(names.tolist(), counts.tolist()))}
        features.append(FeatureReplay(
            view.name, feature.name, int(asked.sum()), int(wrong.sum()), causes,
            _examples(log, offline, feature, wrong, rows, options.examples)))
    current = {f.name for f in view.features}
    fingerprints = pc.unique(table.column("fingerprint").drop_null()).to_pylist()
    return ViewReplay(
        view.name, log.origin, table.num_rows,
        len(pc.unique(table.column("request_id"))), tuple(sorted(fingerprints)), view.fingerprint,
        tuple(features), tuple(sorted(served_names - current)))


def _shared(log: ServedRows, offline: pa.Table, options: ReplayOptions) -> _Rows:
    """Per row: served present, offline row found, and the likely cause were it a mismatch."""
    view, table = log.view, log.table
    status = table.column("status")
    present = np.asarray(pc.fill_null(pc.equal(status, "present"), False)
                         .to_numpy(zero_copy_only=False), dtype=bool)
    assert view.timestamp is not None
    offline_us = micros(offline.column(f"{view.name}__{view.timestamp.name}"))
    served_us = micros(table.column("event_timestamp"))
    request_us = micros(table.column(AT))
    offline_row = ~np.isnan(offline_us)
    late = np.zeros(table.num_rows, dtype=bool)
    early = np.zeros(table.num_rows, dtype=bool)
    if view.created_timestamp is not None and not options.as_known_at:
        created = micros(offline.column(f"{view.name}__{view.created_timestamp.name}"))
        late = offline_row & (created > request_us)
    elif view.created_timestamp is not None:
        with np.errstate(invalid="ignore"):
            early = present & ~(offline_row & (offline_us >= served_us))
    ttl_us = (view.ttl_seconds or 0) * 1_000_000
    after_ttl = present & ~offline_row & (ttl_us > 0) & (served_us + ttl_us < request_us)
    with np.errstate(invalid="ignore"):
        lag = offline_row & ((present & (offline_us > served_us)) | ~present)
    fingerprint = table.column("fingerprint")
    changed = np.asarray(pc.fill_null(pc.not_equal(fingerprint, view.fingerprint), False)
                         .to_numpy(zero_copy_only=False), dtype=bool)
    cause = np.select([late, after_ttl, lag, changed, early],
                      [CAUSES.index(c) for c in CAUSES[:5]], CAUSES.index("unknown"))
    return _Rows(present, offline_row, cause, request_us, served_us, offline_us)


def _requested(served: pa.ChunkedArray) -> dict[str, np.ndarray]:
    """Per feature name, which rows asked for it."""
    served = served.combine_chunks() if isinstance(served, pa.ChunkedArray) else served
    n = len(served)
    flat = pc.list_flatten(served)
    parents = np.asarray(pc.list_parent_indices(served).to_numpy(zero_copy_only=False))
    found: dict[str, np.ndarray] = {}
    for name in pc.unique(flat.drop_null()).to_pylist():
        mask = np.zeros(n, dtype=bool)
        hits = np.asarray(pc.fill_null(pc.equal(flat, name), False).to_numpy(zero_copy_only=False))
        mask[parents[hits]] = True
        found[name] = mask
    return found


def _examples(log: ServedRows, offline: pa.Table, feature: Feature, wrong: np.ndarray,
              rows: _Rows, limit: int) -> tuple[ServedMismatch, ...]:
    """The worst ``limit`` mismatches: largest difference first for numbers, else earliest."""
    index = np.flatnonzero(wrong)
    if not len(index) or limit <= 0:
        return ()
    view, table = log.view, log.table
    served_col = table.column(feature.name)
    off_col = offline.column(f"{view.name}__{feature.name}")
    numeric = [pa.types.is_integer(c.type) or pa.types.is_floating(c.type)
               for c in (served_col, off_col)]
    if all(numeric):
        served = _numbers(served_col.take(pa.array(index)))
        off = _numbers(off_col.take(pa.array(index)))
        gap = np.nan_to_num(np.abs(served - off), nan=np.inf)
        index = index[np.argsort(-gap, kind="stable")]
    index = index[:limit]
    taken = pa.array(index)
    keys = table.select(list(view.entity.key_names)).take(taken).to_pylist()
    served_values = served_col.take(taken).to_pylist()
    off_values = off_col.take(taken).to_pylist()
    request_ids = table.column("request_id").take(taken).to_pylist()
    statuses = table.column("status").take(taken).to_pylist()
    return tuple(
        ServedMismatch(
            keys[k], iso_micros(int(rows.request_us[i])) or "", request_ids[k],
            CAUSES[int(rows.cause[i])], served_values[k] if rows.present[i] else None,
            off_values[k], statuses[k], _iso(rows.served_us[i]), _iso(rows.offline_us[i]))
        for k, i in enumerate(index.tolist()))


def _numbers(column: Any) -> np.ndarray:
    return np.asarray(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False),
                      dtype=np.float64)


def _iso(us: float) -> str | None:
    return None if np.isnan(us) else iso_micros(int(us))
