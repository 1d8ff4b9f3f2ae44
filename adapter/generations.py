"""A view's generations in Redis: numbering a new one, publishing it (or an incremental
sync's results) in one step under the lock, and deleting the ones no longer served.

A full refresh writes generation G+1 beside G; ``publish`` switches ``gen`` and the meta hash in
one script that first checks the sync still holds its lock; only then is G deleted (on a Redis
Cluster, only once the switch has reached the replicas: see ``cluster``). A sync killed midway
leaves its generation recorded as ``pending``; the next sync deletes it.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import TYPE_CHECKING, Any

import redis

from dbt_features.errors import OnlineStoreError
from dbt_features.registry import FeatureView

from .cluster import REPLICATION_TIMEOUT_MS, is_cluster
from .micros import iso_micros
from .scripts import COMMIT
from .sync_plan import SyncPlan

if TYPE_CHECKING:
    from .online import OnlineStore


def new_generation(online: "OnlineStore", view: str, plan: SyncPlan, now: datetime) -> str:
    """The generation id written to: a new one for a full refresh (its number never repeats,
    even after Redis lost the meta hash, and a random tag makes the id unique), else the
    current one."""
    if not plan.full:
        return plan.current_id
    meta_key = online.keys.meta(view)
    online.client.hsetnx(meta_key, "gen_seq", int(now.timestamp()))
    number = int(online.client.hincrby(meta_key, "gen_seq", 1))
    gen = f"{number}.{secrets.token_hex(3)}"
    online.client.hset(meta_key, mapping={"pending": number, "pending_started": now.isoformat()})
    return gen


def publish(online: "OnlineStore", view: FeatureView, token: str, plan: SyncPlan, gen: str,
            keys: int) -> bool:
    """Publish the sync's results (and, for a full refresh, its generation) in one step, only
    if this sync still holds the lock; whether the step reached the replicas (a cluster's)."""
    fields: dict[str, Any] = {"keys": keys, "fingerprint": view.fingerprint,
                              "signature": plan.signature, "ttl_seconds": view.ttl_seconds or 0,
                              "last_mode": "full" if plan.full else "incremental",
                              "last_sync": iso_micros(plan.state.now_us, "seconds"),
                              **plan.state.fields()}
    drop: list[str] = []
    if plan.full:
        fields |= {"gen": gen.split(".")[0], "gen_id": gen, "schema": plan.schema.text()}
        if plan.previous_gen is not None:
            fields["retired"] = plan.previous_gen
        drop = ["pending", "pending_started", *plan.state.absent()]
    flat: list[Any] = []
    for name, value in fields.items():
        flat += [name, value]
    keys_ = online.keys
    args = (COMMIT, 3, keys_.meta(view.name), keys_.lock(view.name), keys_.current(view.name),
            token, gen if plan.full else "", len(fields), *flat, *drop)
    try:
        if not is_cluster(online.client):
            online.client.eval(*args)
            return True
        return _publish_replicated(online.client, keys_.meta(view.name), args)
    except redis.ResponseError as exc:
        if "LOCKLOST" in str(exc):
            raise OnlineStoreError(
                "the sync lost its lock before publishing (it was stopped for over 30 s?); "
                "nothing was published: run it again."
            ) from exc
        raise


def _publish_replicated(client: Any, meta_key: str, args: tuple[Any, ...]) -> bool:
    """``COMMIT`` on the master of the view's slot, then ``WAIT`` on the same connection:
    whether its replicas have the publish step (else the old generation is kept, for a
    failover could bring back the ``gen`` that names it)."""
    conn = client.get_node_from_key(meta_key).redis_connection
    replicas = int(conn.info("replication").get("connected_slaves", 0) or 0)
    pipe = conn.pipeline(transaction=False)
    pipe.eval(*args)
    pipe.execute_command("WAIT", replicas, REPLICATION_TIMEOUT_MS)
    return int(pipe.execute()[1]) >= replicas


def drop_dead_generations(online: "OnlineStore", view: str, meta: dict[str, str]) -> None:
    """Delete generations a killed sync left behind (called under the view's lock)."""
    meta_key = online.keys.meta(view)
    for field_name in ("pending", "retired"):
        gen = meta.get(field_name)
        if gen is not None and gen != meta.get("gen"):
            drop_generation(online, view, gen)
        if gen is not None:
            online.client.hdel(meta_key, field_name, *(("pending_started",) if field_name == "pending" else ()))


def drop_generation(online: "OnlineStore", view: str, gen: int | str) -> int:
    """UNLINK every key of one generation of a view (SCAN, so Redis is never blocked)."""
    client = online.client
    pattern = online.keys.generation_pattern(view, gen)
    removed = 0
    chunk: list[bytes] = []
    for key in client.scan_iter(match=pattern, count=10_000):
        chunk.append(key)
        if len(chunk) >= 5_000:
            removed += _unlink(client, chunk)
            chunk = []
    if chunk:
        removed += _unlink(client, chunk)
    return removed


def _unlink(client: Any, keys: list[bytes]) -> int:
    if not is_cluster(client):
        return int(client.unlink(*keys))
    pipe = client.pipeline(transaction=False)  # one UNLINK per key, grouped per master
    for key in keys:
        pipe.unlink(key)
    return sum(pipe.execute())
