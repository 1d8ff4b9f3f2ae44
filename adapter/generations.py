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
from .scripts import COMMIT, NEW_GENERATION
from .sync_plan import SyncPlan

if TYPE_CHECKING:
    from .online import OnlineStore


def new_generation(online: "OnlineStore", view: str, plan: SyncPlan, now: datetime) -> str:
    """The generation id written to: a new one for a full refresh (its number never repeats,
    even after Redis lost the meta hash, and a random tag makes the id unique), else the
    current one."""
    if not plan.full:
        return plan.current_id
    args = (NEW_GENERATION, 1, online.keys.meta(view), int(now.timestamp()), now.isoformat())
    number, replicated = _eval_replicated(online.client, args)
    if not replicated:  # a failover could hand the same number out again
        raise OnlineStoreError(
            f"the Redis Cluster master of feature view {view!r} did not confirm on its replicas "
            f"within {REPLICATION_TIMEOUT_MS / 1000:g} s that it numbered a new generation: "
            "nothing was written; check the replicas, then sync again.")
    return f"{number}.{secrets.token_hex(3)}"


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
        return _eval_replicated(online.client, args)[1]
    except redis.ResponseError as exc:
        if "LOCKLOST" in str(exc):
            raise OnlineStoreError(
                "the sync lost its lock before publishing (it was stopped for over 30 s?); "
                "nothing was published: run it again."
            ) from exc
        raise


def _eval_replicated(client: Any, args: tuple[Any, ...]) -> tuple[Any, bool]:
    """``EVAL`` of a script on a view's meta slot (``args[2]`` its first key), and whether its
    writes reached the replicas: on a Redis Cluster, ``WAIT`` on the same connection of the
    slot's master, so that a failover cannot undo what it wrote (a generation's number, a
    switch of ``gen``); a single Redis answers at once."""
    if not is_cluster(client):
        return client.eval(*args), True
    conn = client.get_node_from_key(args[2]).redis_connection
    replicas = int(conn.info("replication").get("connected_slaves", 0) or 0)
    pipe = conn.pipeline(transaction=False)
    pipe.eval(*args)
    pipe.execute_command("WAIT", replicas, REPLICATION_TIMEOUT_MS)
    result, acked = pipe.execute()
    return result, int(acked) >= replicas


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
