"""Script calls on a per-thread connection: each thread its own connection of the client's
pool, errors that leave the connection in step keep it, a connection closed while idle is
replaced (the read sent again), a server that is gone is an error, and a finished thread's
connection goes back to the pool."""

from __future__ import annotations

import gc
import socket
import threading

import pytest
import redis

from dbt_features.serving.script_call import ScriptCaller
from helpers import REDIS_URL

ECHO = "return {KEYS[1], ARGV[1]}"


@pytest.fixture
def client() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL, retry=None)
    yield client
    client.close()


def test_each_thread_reads_on_its_own_connection(client: redis.Redis) -> None:
    sha = client.script_load(ECHO)
    calls = ScriptCaller(client)
    results: dict[int, list] = {}
    names: dict[int, set] = {}
    together = threading.Barrier(4)  # all alive at once: no thread inherits a finished one's

    def worker(n: int) -> None:
        together.wait(timeout=10)
        results[n] = [calls.evalsha(sha, [f"k{n}"], [i]) for i in range(50)]
        names[n] = {calls._held().conn for _ in range(3)}
        together.wait(timeout=10)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for n in range(4):
        assert results[n] == [[f"k{n}".encode(), str(i).encode()] for i in range(50)]
        assert len(names[n]) == 1
    assert len(set.union(*names.values())) == 4


def test_an_error_reply_keeps_the_connection_and_a_broken_one_is_replaced(client: redis.Redis) -> None:
    sha = client.script_load(ECHO)
    calls = ScriptCaller(client)
    assert calls.evalsha(sha, ["a"], [1]) == [b"a", b"1"]
    conn = calls._held().conn
    with pytest.raises(redis.exceptions.NoScriptError):
        calls.evalsha("0" * 40, ["a"], [1])
    assert calls._held().conn is conn  # in step: the same connection serves the next call
    assert calls.evalsha(sha, ["a"], [2]) == [b"a", b"2"]
    # The server closes the idle connection (as a restart would): the read goes out again on
    # a new one.
    old = _client_id(conn)
    client.client_kill_filter(_id=old)
    assert calls.evalsha(sha, ["a"], [3]) == [b"a", b"3"]
    assert _client_id(calls._held().conn) != old  # a new server-side connection


def test_a_server_that_is_gone_is_an_error_not_a_loop() -> None:
    with socket.socket() as listener:  # a port that refuses connections once closed
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1, retry=None)
    with pytest.raises(redis.ConnectionError):
        ScriptCaller(client).evalsha("0" * 40, ["a"], [1])


def test_a_finished_threads_connection_returns_to_the_pool(client: redis.Redis) -> None:
    sha = client.script_load(ECHO)
    calls = ScriptCaller(client)
    pool = client.connection_pool
    before = len(pool._in_use_connections)
    thread = threading.Thread(target=lambda: calls.evalsha(sha, ["a"], [1]))
    thread.start()
    thread.join()
    gc.collect()
    assert len(pool._in_use_connections) == before


def _client_id(conn) -> int:
    """The server-side id of ``conn`` (its CLIENT ID, asked on that very connection)."""
    conn.send_command("CLIENT", "ID")
    return int(conn.read_response())
