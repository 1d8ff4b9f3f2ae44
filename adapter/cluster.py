"""Redis Cluster as the online store: seeing it, and where each key lives.

The URL names any node of the cluster (``redis://host:port``, as for a single Redis);
``connect`` asks it ``INFO cluster`` and, when cluster mode is on, opens redis-py's
``RedisCluster`` from it, which learns every node from that one.

Key layout on a cluster (``layout.Keys(prefix, tagged=True)``): a view's ``meta``, ``gen`` and
``lock`` keys carry the hash tag ``{P:V}``, so they share one slot. The sync's publish step
(``scripts.COMMIT``: check the lock, switch ``gen``, update ``meta``) and the lock scripts are
single-slot scripts, as a cluster requires. The bucket hashes ``P:V:G:b`` carry no tag: they
spread over every slot, so a view's values and its reads are spread over the masters. What the
cluster cannot give across slots, atomicity, the design does not need:

* a read sends each master one script call (``scripts.READ_LOCAL``) for the keys it serves:
  values come only from the generation the reader last saw (a bucket key names its
  generation), so a read never mixes two generations. If that generation was retired
  meanwhile, the read sees the new ``gen`` and reads again; if some value is missing, it reads
  ``gen`` once more afterwards, so a generation deleted mid-read is never served as "not
  found" (``cluster_read``);
* writes are grouped by node (``routing``) and, before anything is published, each master
  confirms with ``WAIT`` that its replicas have them, so a failover right after a sync cannot
  lose writes that ``meta`` already counts; the old generation is deleted only once the publish
  step itself has reached the replicas.
"""

from __future__ import annotations

from typing import Any, Union

import numpy as np
import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisClusterException

from dbt_features.errors import OnlineStoreError

Client = Union[redis.Redis, RedisCluster]
"""A client of a single Redis or of a Redis Cluster."""

REDIS_FAILURES = (redis.RedisError, RedisClusterException, OSError)
"""What a Redis call may raise when it fails: redis-py's cluster client raises some errors
(a slot no node serves) outside ``RedisError``."""

REPLICATION_TIMEOUT_MS = 5_000
"""How long a master may take to confirm its replicas have the sync's writes."""


def is_cluster(client: Client) -> bool:
    return isinstance(client, RedisCluster)


def cluster_enabled(client: redis.Redis) -> bool:
    """Whether the server behind a plain client is a cluster node."""
    try:
        return str(client.info("cluster").get("cluster_enabled", 0)) == "1"
    except redis.ResponseError:
        return False  # a server without INFO cluster (or that refuses it) is no cluster


def node_infos(client: Client, *sections: str) -> list[dict[str, Any]]:
    """``INFO`` of each master (one dict per master, the sections merged)."""
    if not is_cluster(client):
        merged: dict[str, Any] = {}
        for section in sections:
            merged |= client.info(section)
        return [merged]
    per_node: dict[str, dict[str, Any]] = {}
    for section in sections:
        for name, info in client.info(section, target_nodes=RedisCluster.PRIMARIES).items():
            per_node.setdefault(name, {}).update(info)
    return list(per_node.values())


class Topology:
    """The masters, and which one serves each slot, as the client last learned them."""

    def __init__(self, client: RedisCluster) -> None:
        self.client = client
        self.nodes: list[ClusterNode] = []
        self._slot_node = np.zeros(0, dtype=np.int32)
        self._load()

    def _load(self) -> None:
        cache = self.client.nodes_manager.slots_cache
        names: dict[str, int] = {}
        nodes: list[ClusterNode] = []
        slot_node = np.full(16384, -1, dtype=np.int32)
        for slot, serving in cache.items():
            primary = serving[0]
            if primary.name not in names:
                names[primary.name] = len(nodes)
                nodes.append(primary)
            slot_node[slot] = names[primary.name]
        if (slot_node < 0).any():
            raise OnlineStoreError("the Redis Cluster does not cover all 16384 slots "
                                   "(cluster_state is not ok): fix the cluster, then retry.")
        self.nodes, self._slot_node = nodes, slot_node

    def refresh(self) -> None:
        """Learn the slots again (after a failover, a resharding or a node lost)."""
        try:
            self.client.nodes_manager.initialize()
        except (*REDIS_FAILURES, TypeError, IndexError) as exc:
            # redis-py 8 fails on a slot range whose master is unknown (a failover under way)
            # with a TypeError: the same "cannot learn the slots now".
            raise OnlineStoreError(f"cannot learn the Redis Cluster's slots (a failover under "
                                   f"way?): {exc}") from exc
        self._load()

    def node_index(self, key: bytes) -> int:
        return int(self._slot_node[key_slot(key)])

    def node_indexes(self, keys: list[bytes]) -> np.ndarray:
        slots = np.fromiter((key_slot(k) for k in keys), dtype=np.int32, count=len(keys))
        return self._slot_node[slots]

    def connection(self, index: int) -> redis.Redis:
        """A plain client of one master (its own connection pool)."""
        node = self.nodes[index]
        if node.redis_connection is None:
            self.client.nodes_manager.create_redis_connections([node])
        return node.redis_connection

    def replicas(self, index: int) -> int:
        """How many replicas are connected to one master now."""
        info = self.connection(index).info("replication")
        return int(info.get("connected_slaves", 0) or 0)


def check_replicated(acked: int, replicas: int, where: str) -> None:
    """The answer of ``WAIT replicas REPLICATION_TIMEOUT_MS`` on a connection that wrote: fewer
    than ``replicas`` is one ``OnlineStoreError`` (a failover now could lose those writes)."""
    if acked < replicas:
        raise OnlineStoreError(
            f"the Redis Cluster master {where} confirmed its writes on {acked} of {replicas} "
            f"replicas within {REPLICATION_TIMEOUT_MS / 1000:g} s: nothing was published (a "
            "failover could lose them); check the replicas, then sync again.")
