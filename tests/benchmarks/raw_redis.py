"""The fastest raw script call the benchmarks compare reads with: one connection held for the
whole run, the command packed by hiredis, sent and read on it directly (no pool checkout, no
retries, none of redis-py's per-command layers)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import hiredis
import redis

BARE_READ = ("local out = {} for i = 1, #KEYS do out[i] = redis.call('HGET', KEYS[i], ARGV[i]) "
             "end return out")
"""The bare read: one ``HGET`` per (bucket, field), in one script call (one round trip)."""


def raw_script(client: redis.Redis, lua: str = BARE_READ) -> Callable[[Sequence[Any], Sequence[Any]], Any]:
    """``call(keys, args)``: ``EVALSHA`` of ``lua`` on a connection of ``client`` held for good."""
    sha = client.script_load(lua)
    conn = client.connection_pool.get_connection()

    def call(keys: Sequence[Any], args: Sequence[Any]) -> Any:
        conn.send_packed_command([hiredis.pack_command((b"EVALSHA", sha, len(keys), *keys, *args))],
                                 check_health=False)
        return conn.read_response()

    return call


def packed_hset_pexpireat(client: redis.Redis, groups: Sequence[tuple[Any, int, int, int]],
                          fields: Sequence[Any], blobs: Sequence[Any], chunk: int = 100) -> None:
    """The fastest raw write of a sync's payload: per bucket ``(key, start, end, expiry)`` of
    ``groups``, ``HSET key field blob ...`` of its rows and ``PEXPIREAT key expiry``, packed by
    hiredis, ``chunk`` buckets per round trip, the replies of one read while the next is sent."""
    conn = client.connection_pool.get_connection()
    previous = 0
    for i in range(0, len(groups), chunk):
        commands = []
        for key, a, b, at in groups[i : i + chunk]:
            pairs = [x for pair in zip(fields[a:b], blobs[a:b]) for x in pair]
            commands.append(hiredis.pack_command((b"HSET", key, *pairs)))
            commands.append(hiredis.pack_command((b"PEXPIREAT", key, at)))
        conn.send_packed_command([b"".join(commands)], check_health=False)
        for _ in range(previous):
            conn.read_response()
        previous = len(commands)
    for _ in range(previous):
        conn.read_response()
    client.connection_pool.release(conn)
