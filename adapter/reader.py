"""How a read reaches Redis: one ``scripts.READ`` call on a single Redis, one
``scripts.READ_LOCAL`` call per master on a Redis Cluster (``cluster_read``). Either way the
answer is the generations of the views, then the values, in the order asked."""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import redis

from .cluster import is_cluster
from .cluster_read import ClusterReader
from .script_call import ScriptCaller
from .scripts import READ


class Reader(Protocol):
    def read(self, keys: Sequence[str], args: Sequence[Any]) -> list[bytes | None]: ...


class SingleReader:
    """``READ`` on a held connection (``script_call``), loaded on first use and again after
    Redis lost its scripts (a restart)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.calls = ScriptCaller(client)
        self.sha = ""

    def read(self, keys: Sequence[str], args: Sequence[Any]) -> list[bytes | None]:
        for attempt in range(2):
            if not self.sha:
                self.sha = self.client.script_load(READ)
            try:
                return self.calls.evalsha(self.sha, keys, args)
            except redis.exceptions.NoScriptError:
                self.sha = ""
                if attempt:
                    raise
        raise AssertionError("unreachable")


def open_reader(client: Any) -> Reader:
    return ClusterReader(client) if is_cluster(client) else SingleReader(client)
