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

from dataclasses import dataclass, field
from typing import Any, Sequence

import redis
from redis.cluster import RedisCluster

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

    def read(self, keys: Sequence[str], args: Sequence[Any]) -> list[bytes | None]:
        for attempt in range(2):
            try:
                return self._read(keys, args)
            except redis.exceptions.NoScriptError:
                self._sha = ""  # a replica promoted since: it never had the script
                if attempt:
                    raise
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as exc:
                if attempt or not _topology_changed(exc):
                    raise
                self.topology.refresh()
                self._callers.clear()
                self._nodes.clear()
        raise AssertionError("unreachable")

    def _read(self, keys: Sequence[str], args: Sequence[Any]) -> list[bytes | None]:
        nv = int(args[0])
        out = self._call(keys[:nv], list(zip(keys[nv:], args[1:])))
        if None in out[nv:]:
            # Missing values count only if their generation is still served after they were
            # read (it may have been retired and deleted between reading gen and the values).
            out[:nv] = self._call(keys[:nv], [])
        return out

    def _call(self, heads: Sequence[str], pairs: list[tuple[str, Any]]) -> list[bytes | None]:
        """``gen`` of each of ``heads``, then the field of each (key, field) pair."""
        if not self._sha:
            self._sha = self.client.script_load(READ_LOCAL)
        calls = [_NodeCall() for _ in self.topology.nodes]
        node_of = self._node_of
        for i, key in enumerate(heads):
            call = calls[node_of(key)]
            call.head_at.append(i)
            call.heads.append(key)
        for j, (key, wanted) in enumerate(pairs):
            call = calls[node_of(key)]
            call.pair_at.append(j)
            call.pairs += (key, wanted)
        sent: list[tuple[Pending, ScriptCaller, _NodeCall]] = []
        for node, call in enumerate(calls):
            if call.head_at or call.pair_at:
                caller = self._caller(node)
                sent.append((caller.send(self._sha, (), (len(call.heads), *call.heads, *call.pairs)),
                             caller, call))
        nv = len(heads)
        out: list[bytes | None] = [None] * (nv + len(pairs))
        for k, (pending, caller, call) in enumerate(sent):
            try:
                reply = caller.receive(pending)
            except BaseException:
                for unread, other, _ in sent[k + 1:]:
                    other.discard(unread)  # its reply is never read: the connection goes
                raise
            for i, value in zip(call.head_at, reply):
                out[i] = value
            for j, value in zip(call.pair_at, reply[len(call.head_at):]):
                out[nv + j] = value
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


@dataclass
class _NodeCall:
    """What one master is asked: positions in the answer, and the script's arguments."""

    head_at: list[int] = field(default_factory=list)
    heads: list[str] = field(default_factory=list)
    pair_at: list[int] = field(default_factory=list)
    pairs: list[Any] = field(default_factory=list)
    """Key, field, key, field..."""


def _topology_changed(exc: BaseException) -> bool:
    """A connection failure, or a refusal that says the slots moved."""
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return True
    return any(word in str(exc) for word in _MOVED)
