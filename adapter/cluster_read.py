"""A read on a Redis Cluster: ``scripts.READ``'s contract, one script call per master.

The read's keys (the views' ``gen`` keys, then one bucket per value) are grouped by the master
that serves their slot; every master gets its ``READ_LOCAL`` call before any answer is read, so
the masters work at the same time. Why this stays exact without one atomic step is in
``cluster``: values come from the generation named in their keys, and a value found missing is
trusted only once ``gen`` is read again after it.

A failover, a resharding or a lost node shows as a refused or failed call: the slots are learned
again and the read is sent once more; if that fails too, the error reaches the caller (the
server answers 503 and recovers with the cluster).
"""

from __future__ import annotations

import itertools
from typing import Any, Sequence

import redis
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from .cluster import Topology
from .script_call import Pending, ScriptCaller
from .scripts import READ_LOCAL

_REMEMBERED = 1 << 20
"""Keys whose master a reader remembers (about 100 MB at most)."""
_MOVED = ("MOVED", "ASK", "CLUSTERDOWN", "TRYAGAIN", "non local key")


class ClusterReader:
    """``read(keys, args)`` as ``scripts.READ`` answers it, on a Redis Cluster."""

    def __init__(self, client: RedisCluster) -> None:
        self.client = client
        self.topology = Topology(client)
        self._callers: dict[str, ScriptCaller] = {}
        self._nodes: dict[str, int] = {}
        self._sha = ""
        self._tags = itertools.count()

    def read(self, keys: Sequence[str], args: Sequence[Any]) -> list[bytes | None]:
        for attempt in range(2):
            try:
                return self._read(keys, args)
            except redis.exceptions.NoScriptError:
                self._sha = ""  # a replica promoted since: it never had the script
                if attempt:
                    raise
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError,
                    RedisClusterException) as exc:
                if attempt or not _topology_changed(exc):
                    raise
                self.topology.refresh()
                self._callers.clear()
                self._nodes.clear()
        raise AssertionError("unreachable")

    def _read(self, keys: Sequence[str], args: Sequence[Any]) -> list[bytes | None]:
        nv = int(args[0])
        out = self._call(keys, args[1:], nv)
        if None in out[nv:]:
            # Missing values count only if their generation is still served after they were
            # read (it may have been retired and deleted between reading gen and the values).
            out[:nv] = self._call(keys[:nv], (), nv)
        return out

    def _call(self, keys: Sequence[str], fields: Sequence[Any], nv: int) -> list[bytes | None]:
        """``gen`` of each of the first ``nv`` keys, then the field of each other key (its
        field in ``fields``): one script call per master, every call sent before any answer
        is read. A master's call holds its keys in their order, so its answer maps back by
        position."""
        if not self._sha:
            self._sha = self.client.script_load(READ_LOCAL)
        known = self._nodes.get
        nodes = [known(key) for key in keys]
        if None in nodes:
            nodes = [self._node_of(key) for key in keys]
        tag = b"%d" % next(self._tags)
        sent: list[tuple[Pending, ScriptCaller, list[int]]] = []
        try:
            for node in sorted(set(nodes)):
                at = [i for i, n in enumerate(nodes) if n == node]
                heads = [keys[i] for i in at if i < nv]
                pairs = [part for i in at if i >= nv for part in (keys[i], fields[i - nv])]
                caller = self._caller(node)
                sent.append((caller.send(self._sha, (), (tag, len(heads), *heads, *pairs)),
                             caller, at))
            replies = [caller.receive(pending) for pending, caller, _ in sent]
            if any(reply[0] != tag for reply in replies):
                raise redis.ConnectionError("a Redis Cluster master answered another call")
        except BaseException:
            for pending, caller, _ in sent:
                caller.discard(pending)  # a reply may be left unread: the connection goes
            raise
        out: list[bytes | None] = [None] * len(keys)
        for reply, (_, _, at) in zip(replies, sent):
            for i, value in zip(at, reply[1:]):
                out[i] = value
        return out

    def _node_of(self, key: str) -> int:
        """The master of ``key`` (remembered: a bucket's key is read again and again)."""
        node = self._nodes.get(key)
        if node is None:
            if len(self._nodes) >= _REMEMBERED:
                self._nodes.clear()
            node = self._nodes[key] = self.topology.node_index(key.encode())
        return node

    def _caller(self, node: int) -> ScriptCaller:
        name = self.topology.nodes[node].name
        caller = self._callers.get(name)
        if caller is None:
            caller = self._callers[name] = ScriptCaller(self.topology.connection(node))
        return caller


def _topology_changed(exc: BaseException) -> bool:
    """A connection failure, or a refusal that says the slots moved."""
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError, RedisClusterException)):
        return True
    return any(word in str(exc) for word in _MOVED)
