"""How one list of feature references is read: worked out once per list and cached.

A ``ReadPlan`` resolves the references against the registry (views, response columns, views
grouped by join keys so they share checked entity keys). A ``Prepared`` adds what depends on
the generations being served (the read's leading generation keys and the values they must
hold, each view's ``Locator`` and ``ViewReader``); it is rebuilt when a generation changes.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

from dbt_features.errors import UsageError
from dbt_features.registry import FeatureRef, FeatureView, Registry

from .entity_keys import KeySpec, fast_key
from .codec import Codec
from .layout import integer_keyed
from .servable import check_servable

Locator = Callable[[list[Any], list[Any], list[Any]], None]
"""``locate(entity_keys, keys, fields)``: appends the bucket key and the field of each entity
(``layout.locate``, for one generation) to ``keys`` and ``fields``."""


@dataclass(frozen=True)
class ViewPlan:
    view: FeatureView
    features: tuple[str, ...]
    columns: tuple[int, ...]
    """Where each of ``features`` goes in the response."""
    key_spec: KeySpec
    group: int
    """Index of its key spec in ``ReadPlan.groups``."""


class KeyGroup(NamedTuple):
    """Views joined on the same keys, and the fast key check for a single key."""

    spec: KeySpec
    views: tuple[FeatureView, ...]
    fast: tuple[Any, type] | None


@dataclass(frozen=True)
class ReadPlan:
    refs: tuple[str, ...]
    dtypes: tuple[str, ...]
    views: tuple[ViewPlan, ...]
    groups: tuple[KeyGroup, ...]
    names: tuple[str, ...]
    """The views' names, in ``views`` order."""


class ViewReader(NamedTuple):
    """One view under one generation."""

    decode: Callable[[bytes], tuple[Any, ...]]
    """A blob to ``(event_us, value, ...)`` for the requested features the generation holds."""
    found: tuple[int, ...]
    """Response columns of those features."""
    absent: tuple[int, ...]
    """Response columns of features the generation does not hold (synced before they
    existed): not found."""
    columns: tuple[int, ...]
    """Every response column of the view."""
    ttl_us: int


class Prepared:
    """What a plan needs per request under the current generations."""

    __slots__ = ("epoch", "head", "expected", "locators", "readers", "ordered")

    def __init__(self, epoch: int, head: list[str], expected: list[bytes],
                 locators: tuple[tuple[Locator, int], ...], readers: tuple[ViewReader, ...]) -> None:
        self.epoch, self.head, self.expected = epoch, head, expected
        self.locators, self.readers = locators, readers
        columns = [c for r in readers for c in r.found if not r.absent]
        self.ordered = columns == list(range(sum(len(r.columns) for r in readers)))
        """Every view's columns are all found and follow each other in view order."""


def plan_read(registry: Registry, features: tuple[str, ...]) -> ReadPlan:
    """Resolve ``features`` (``view:feature`` / ``view:*``) into a plan."""
    if not features:
        raise UsageError("no features requested: name at least one view:feature or view:*.")
    resolved = registry.resolve(FeatureRef.parse(f) for f in features)
    by_view: dict[str, list[tuple[str, int]]] = {}
    views: dict[str, FeatureView] = {}
    for column, (view, feature) in enumerate(resolved):
        check_servable(view)
        views[view.name] = view
        by_view.setdefault(view.name, []).append((feature.name, column))
    specs = {name: tuple((k.name, k.dtype) for k in view.entity.join_keys)
             for name, view in views.items()}
    groups: dict[KeySpec, tuple[FeatureView, ...]] = {}
    for name, spec in specs.items():
        groups[spec] = groups.get(spec, ()) + (views[name],)
    order = list(groups)
    view_plans = tuple(
        ViewPlan(views[name], tuple(f for f, _ in items), tuple(c for _, c in items),
                 specs[name], order.index(specs[name]))
        for name, items in by_view.items()
    )
    return ReadPlan(
        refs=tuple(f"{v.name}:{f.name}" for v, f in resolved),
        dtypes=tuple(f.dtype for _, f in resolved),
        views=view_plans,
        groups=tuple(KeyGroup(spec, members, fast_key(spec)) for spec, members in groups.items()),
        names=tuple(vp.view.name for vp in view_plans),
    )


def view_reader(vp: ViewPlan, codec: Codec, positions: dict[str, int]) -> ViewReader:
    pairs = [(positions[f], c) for f, c in zip(vp.features, vp.columns) if f in positions]
    found = tuple(c for _, c in pairs)
    absent = tuple(c for c in vp.columns if c not in found)
    ttl_us = (vp.view.ttl_seconds or 0) * 1_000_000
    return ViewReader(codec.picker([p for p, _ in pairs]), found, absent, vp.columns, ttl_us)


def locator(base: str, key_dtypes: tuple[str, ...], buckets: int) -> Locator:
    """Where the entities of one generation live (``base``: its key prefix ``P:V:G:``). A
    string is UTF-8 encoded here: a lone surrogate raises ``UnicodeEncodeError``."""
    if integer_keyed(key_dtypes):
        def by_value(values: list[Any], keys: list[Any], fields: list[Any]) -> None:
            for value in values:
                quotient, bucket = divmod(value, buckets)
                keys.append(base + str(bucket))
                fields.append(quotient)
        return by_value
    crc32 = zlib.crc32

    def by_hash(values: list[Any], keys: list[Any], fields: list[Any]) -> None:
        for value in values:
            field = value.encode()
            keys.append(base + str(crc32(field) % buckets))
            fields.append(field)
    return by_hash
