"""Bulk writes to Redis: whole batches framed as RESP by Arrow kernels and pipelined.

Building one Python command tuple per key costs more than Redis spends executing it; instead
the ``SET key blob PXAT ms`` commands of a batch are framed column-wise in Arrow (C++) into one
buffer and sent with one ``sendall``, while the previous batch's replies are read back. Memory
stays bounded by two batches.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import redis

from dbt_features.errors import OnlineStoreError

from .config import OnlineConfig

_OK = b"+OK\r\n"


def bulk(values: pa.Array) -> pa.Array:
    """Each value as a RESP bulk string: ``$<len>\\r\\n<value>\\r\\n``."""
    values = values if values.type == pa.binary() else values.cast(pa.binary())
    lengths = pc.binary_length(values).cast(pa.string()).cast(pa.binary())
    return pc.binary_join_element_wise(b"$", lengths, b"\r\n", values, b"\r\n", b"")


def joined(values: pa.Array) -> memoryview:
    """The concatenated bytes of a binary array, without copying each element."""
    if len(values) == 0:
        return memoryview(b"")
    values = values if values.type == pa.binary() else values.cast(pa.binary())
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int32)[values.offset : values.offset + len(values) + 1]
    return memoryview(values.buffers()[2])[offsets[0] : offsets[-1]]


def set_commands(keys: pa.Array, blobs: pa.Array, pxat: pa.Array | None) -> memoryview:
    """``SET key blob [PXAT ms]`` for every row, as one RESP buffer."""
    if pxat is None:
        return joined(pc.binary_join_element_wise(b"*3\r\n$3\r\nSET\r\n", bulk(keys), bulk(blobs), b""))
    return joined(
        pc.binary_join_element_wise(
            b"*5\r\n$3\r\nSET\r\n", bulk(keys), bulk(blobs), b"$4\r\nPXAT\r\n", bulk(pxat), b""
        )
    )


def evalsha_commands(sha: str, keys: pa.Array, blobs: pa.Array, pxat: pa.Array, chunk: int) -> list[bytes]:
    """``EVALSHA sha n k1..kn blob1 pxat1 ...`` per ``chunk`` rows (the conditional write)."""
    key_parts = bulk(keys)
    arg_parts = pc.binary_join_element_wise(bulk(blobs), bulk(pxat), b"")
    out = []
    for start in range(0, len(keys), chunk):
        n = min(chunk, len(keys) - start)
        count = str(n).encode()
        head = b"*%d\r\n$7\r\nEVALSHA\r\n$40\r\n%s\r\n$%d\r\n%s\r\n" % (
            3 + 3 * n, sha.encode(), len(count), count,
        )
        out.append(
            head + bytes(joined(key_parts.slice(start, n))) + bytes(joined(arg_parts.slice(start, n)))
        )
    return out


class PipelinedWriter:
    """Sends command buffers on one dedicated connection, reading a buffer's replies only after
    the next one is sent (client framing and server execution overlap)."""

    def __init__(self, client: redis.Redis, config: OnlineConfig) -> None:
        self.where = config.shown
        self.scrub = config.scrub
        self.pool = client.connection_pool
        self.conn: Any = self.pool.get_connection()
        self._expect: list[tuple[str, int]] = []
        self.replies: list[Any] = []
        self._kept = False
        """Once replies went through redis-py's parser, it may hold buffered bytes: no raw reads."""

    def send_sets(self, buffer: memoryview, count: int) -> None:
        """A buffer of ``count`` SET commands (each replies +OK)."""
        self._send([buffer])
        self._drain_all_but_last()
        self._expect.append(("ok", count))

    def send_commands(self, buffers: list[bytes]) -> None:
        """Buffers of one command each, whose replies are kept in ``replies``."""
        self._send(buffers)
        self._drain_all_but_last()
        self._expect.append(("keep", len(buffers)))

    def flush(self) -> list[Any]:
        while self._expect:
            self._drain_one()
        replies, self.replies = self.replies, []
        return replies

    def close(self, *, broken: bool = False) -> None:
        if broken or self._expect:
            self.conn.disconnect()  # unread replies: the connection cannot be reused
        self.pool.release(self.conn)

    def _drain_ok(self, sock: Any, count: int) -> None:
        """Read ``count`` ``+OK`` replies straight from the socket and compare them in bulk
        (parsing a million replies one by one costs more than Redis spends on the SETs).
        Any other reply (an error) is longer, so reading 5 bytes per reply never blocks."""
        size = len(_OK) * count
        buffer = bytearray(size)
        view = memoryview(buffer)
        got = 0
        try:
            while got < size:
                n = sock.recv_into(view[got:], size - got)
                if n == 0:
                    raise OSError("connection closed by the server")
                got += n
        except OSError as exc:
            raise self._failed("reading replies from", exc) from exc
        if buffer != _OK * count:
            self._expect.clear()
            start = next(i for i in range(0, size, len(_OK)) if buffer[i : i + len(_OK)] != _OK)
            detail = bytes(buffer[start : start + 200]).split(b"\r\n")[0].decode(errors="replace")
            raise _refused(self.where, detail.lstrip("-"))

    def _failed(self, doing: str, exc: BaseException) -> OnlineStoreError:
        self._expect.clear()
        return OnlineStoreError(f"{doing} Redis at {self.where} failed: {self.scrub(str(exc))}")

    def _send(self, buffers: list[Any]) -> None:
        try:
            self.conn.send_packed_command(buffers, check_health=False)
        except (redis.RedisError, OSError) as exc:
            raise self._failed("writing to", exc) from exc

    def _drain_all_but_last(self) -> None:
        while len(self._expect) > 1:
            self._drain_one()

    def _drain_one(self) -> None:
        kind, count = self._expect.pop(0)
        sock = getattr(self.conn, "_sock", None)
        if kind == "ok" and sock is not None and not self._kept:
            self._drain_ok(sock, count)
            return
        self._kept = self._kept or kind == "keep"
        try:
            for _ in range(count):
                reply = self.conn.read_response(disable_decoding=True)
                if kind == "keep":
                    self.replies.append(reply)
                elif reply != b"OK":
                    raise OnlineStoreError(f"Redis at {self.where} answered {reply!r} to SET.")
        except redis.ResponseError as exc:
            self._expect.clear()
            raise _refused(self.where, self.scrub(str(exc))) from exc
        except (redis.RedisError, OSError) as exc:
            raise self._failed("reading replies from", exc) from exc


def _refused(where: str, detail: str) -> OnlineStoreError:
    hint = (" Redis is full (maxmemory): the sync stopped and did not advance its watermark; "
            "free memory or raise maxmemory, then sync again.") if detail.startswith("OOM") else ""
    return OnlineStoreError(f"Redis at {where} refused a write: {detail}{hint}")
