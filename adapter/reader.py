"""How a read reaches Redis: one ``scripts.READ`` call on a single Redis, one
``scripts.READ_LOCAL`` call per master on a Redis Cluster (``cluster_read``). Either way the
answer is the generations of the views, then the values, in the order asked."""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import redis

from .cluster import is_cluster
from .cluster_read import ClusterReader
from .script_call import ScriptCaller
from .scripts import READ, READ_LOGGED


class Reader(Protocol):
    def read(self, keys: Sequence[str], args: Sequence[Any]) -> list[bytes | None]: ...


class SingleReader:
    """``READ`` on a held connection (``script_call``), loaded on first use and again after
    Redis lost its scripts (a restart)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.calls = ScriptCaller(client)
        self.shas: dict[str, str] = {}

    def read(self, keys: Sequence[str], args: Sequence[Any]) -> list[bytes | None]:
        return self._call(READ, keys, args)

    def read_logged(self, keys: Sequence[str], args: Sequence[Any], stream: str,
                    log_args: Sequence[Any]) -> tuple[list[bytes | None], bool | None]:
        """``read``, with the served log's entry written by the same script
        (``scripts.READ_LOGGED``): also whether it was (None: not tried, a generation
        differed from the expected one, the last of ``log_args``)."""
        out = self._call(READ_LOGGED, [*keys, stream], [*args, *log_args])
        if len(out) == len(keys):
            return out, None
        return out[:-1], out[-1] == 1

    def _call(self, script: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        for attempt in range(2):
            sha = self.shas.get(script)
            if sha is None:
                sha = self.shas[script] = self.client.script_load(script)
            try:
                return self.calls.evalsha(sha, keys, args)
            except redis.exceptions.NoScriptError:
                self.shas.clear()
                if attempt:
                    raise
        raise AssertionError("unreachable")


def open_reader(client: Any) -> Reader:
    return ClusterReader(client) if is_cluster(client) else SingleReader(client)
