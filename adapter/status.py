"""What the online store holds for each view (``dbt-features status``): read from each view's
meta hash (entity count, and the layout it was written in), lock and published generation
key, and the server's eviction counters (an evicted bucket loses ~100 entities at once)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import redis

from dbt_features.registry import FeatureView

from .codec import FORMAT_VERSION, schema_version
from .eviction import memory_policy
from .layout import Keys
from .micros import iso_micros


@dataclass(frozen=True)
class ViewStatus:
    """What the online store holds for one view (``dbt-features status``)."""

    view: str
    synced: bool
    last_sync: str | None
    last_mode: str | None
    watermark: str | None
    """Greatest created time (event time without created_timestamp) synced."""
    keys: int | None
    """Entities stored (fields of the bucket hashes) as of the last sync."""
    generation: int | None
    fingerprint: str | None
    """The definition fingerprint that was synced."""
    current_fingerprint: str
    up_to_date: bool
    """The synced fingerprint is the current definition's."""
    running: str | None
    """The holder of the sync lock, if a sync is running."""
    warnings: tuple[str, ...] = ()
    """Keys that may be gone: evicted by Redis, or a published generation without its key."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_status(client: redis.Redis, keys: Keys, views: list[FeatureView], where: str) -> list[ViewStatus]:
    """One pipelined round trip for every view, plus the server's memory settings."""
    pipe = client.pipeline(transaction=False)
    for v in views:
        pipe.hgetall(keys.meta(v.name))
        pipe.get(keys.lock(v.name))
        pipe.get(keys.current(v.name))
    replies = pipe.execute()
    policy = memory_policy(client)
    evicted = (
        f"Redis at {where} has evicted {policy.evicted_keys:,} keys since it started "
        f"({policy.describe()}): served values may be missing; run `dbt-features verify`."
    ) if policy.evicted_keys else None
    return [_view_status(v, *replies[3 * i: 3 * i + 3], evicted) for i, v in enumerate(views)]


def _view_status(view: FeatureView, raw_meta: dict[bytes, bytes], lock: bytes | None,
                 current: bytes | None, evicted: str | None) -> ViewStatus:
    meta = {k.decode(): val.decode() for k, val in raw_meta.items()}
    synced = "gen_id" in meta
    warnings = [evicted] if evicted else []
    if synced and current is None:
        warnings.append(
            f"{view.name}: its published generation key is missing (evicted or deleted): reads "
            "fail until `dbt-features sync --full-refresh`.")
    version = schema_version(meta.get("schema"))
    if synced and version != FORMAT_VERSION:
        warnings.append(
            f"{view.name}: synced by an older dbt-features in another key layout (format "
            f"{version}, now {FORMAT_VERSION}): reads fail until `dbt-features sync` rewrites it.")
    return ViewStatus(
        view=view.name, synced=synced, last_sync=meta.get("last_sync"),
        last_mode=meta.get("last_mode"), watermark=iso_micros(meta.get("watermark_us")),
        keys=int(meta["keys"]) if "keys" in meta else None,
        generation=int(meta["gen"]) if synced else None,
        fingerprint=meta.get("fingerprint"), current_fingerprint=view.fingerprint,
        up_to_date=synced and meta.get("fingerprint") == view.fingerprint,
        running=lock.decode() if lock else None, warnings=tuple(warnings),
    )
