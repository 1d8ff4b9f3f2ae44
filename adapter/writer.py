"""Bulk writes to Redis: whole batches framed as RESP by Arrow kernels and pipelined.

Building one Python command tuple per entity costs more than Redis spends executing it;
instead the ``HSET bucket field blob ...`` commands of a batch (one per bucket it touches) are
framed column-wise in Arrow (C++) into one buffer and sent with one ``sendall``, while the
previous batch's replies are read back. Memory stays bounded by two batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import redis

from dbt_features.errors import OnlineStoreError

from .config import OnlineConfig

def bulk(values: pa.Array) -> pa.Array:
    """Each value as a RESP bulk string: ``$<len>\\r\\n<value>\\r\\n``."""
    return pc.binary_join_element_wise(*bulk_parts(values), b"")


def bulk_parts(values: pa.Array) -> list[Any]:
    """``bulk`` as the parts of one ``binary_join_element_wise`` (arrays and constants), to be
    joined with other parts in one pass. Values of one width (the blobs of a view without
    string features) share one constant header."""
    values = values if values.type == pa.binary() else values.cast(pa.binary())
    lengths = pc.binary_length(values)
    bounds = pc.min_max(lengths).as_py()
    if bounds["min"] is not None and bounds["min"] == bounds["max"]:
        return [b"$%d\r\n" % bounds["min"], values, b"\r\n"]
    return [b"$", lengths.cast(pa.string()).cast(pa.binary()), b"\r\n", values, b"\r\n"]


def joined(values: pa.Array) -> memoryview:
    """The concatenated bytes of a binary array, without copying each element."""
    if len(values) == 0:
        return memoryview(b"")
    values = values if values.type == pa.binary() else values.cast(pa.binary())
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int32)[values.offset : values.offset + len(values) + 1]
    return memoryview(values.buffers()[2])[offsets[0] : offsets[-1]]


@dataclass(frozen=True)
class Grouped:
    """A batch's rows grouped by bucket (one stable sort)."""

    order: np.ndarray
    """Row positions, bucket by bucket."""
    starts: np.ndarray
    """Where each bucket's rows start in ``order``."""
    buckets: np.ndarray
    """Each group's bucket."""

    @classmethod
    def of(cls, buckets: np.ndarray) -> "Grouped":
        # Bucket numbers that fit 16 bits sort by radix (numpy's stable sort), ~10x faster.
        keys = buckets.astype(np.uint16) if len(buckets) and buckets.max() < 1 << 16 else buckets
        order = np.argsort(keys, kind="stable")
        ordered = buckets[order]
        starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
        return cls(order, starts, ordered[starts])

    def maxima(self, values: np.ndarray) -> np.ndarray:
        """The greatest of ``values`` (one per row) in each group."""
        return np.maximum.reduceat(values[self.order], self.starts)


def hset_commands(base: bytes, groups: Grouped, fields: pa.Array, blobs: pa.Array) -> tuple[memoryview, int]:
    """One ``HSET base<bucket> field blob [field blob ...]`` per bucket of the rows, as one RESP
    buffer, and the number of commands. Each group's header goes in front of its first row, so
    the whole buffer is one Arrow join."""
    n = len(groups.order)
    counts = np.diff(np.append(groups.starts, n))
    keys = pc.binary_join_element_wise(base, pa.array(groups.buckets).cast(pa.string()).cast(pa.binary()), b"")
    headers = pc.binary_join_element_wise(
        b"*", pa.array(2 + 2 * counts).cast(pa.string()).cast(pa.binary()), b"\r\n$4\r\nHSET\r\n",
        bulk(keys), b"")
    slot = np.full(n, -1, dtype=np.int64)
    slot[groups.starts] = np.arange(len(groups.starts))
    row_heads = pc.fill_null(headers.take(pa.array(slot, mask=slot < 0)), b"")
    rows = pa.array(groups.order)
    parts = [row_heads, *bulk_parts(fields.take(rows)), *bulk_parts(blobs.take(rows))]
    return joined(pc.binary_join_element_wise(*parts, b"")), len(groups.starts)


def pexpireat_commands(base: bytes, buckets: np.ndarray, at_ms: np.ndarray) -> memoryview:
    """``PEXPIREAT base<bucket> ms`` per bucket, as one RESP buffer."""
    keys = pc.binary_join_element_wise(base, pa.array(buckets).cast(pa.string()).cast(pa.binary()), b"")
    return joined(pc.binary_join_element_wise(
        b"*3\r\n$9\r\nPEXPIREAT\r\n", bulk(keys), bulk(pa.array(at_ms).cast(pa.string())), b""))


def fixed_spans(rows: int, size: int) -> list[tuple[int, int]]:
    """``(start, count)`` of consecutive chunks of at most ``size`` rows."""
    return [(start, min(size, rows - start)) for start in range(0, rows, size)]


def bucket_spans(groups: Grouped, size: int) -> list[tuple[int, int]]:
    """``fixed_spans`` within each bucket of rows already ordered by ``groups``."""
    ends = np.append(groups.starts[1:], len(groups.order))
    return [(start + offset, count) for start, end in zip(groups.starts.tolist(), ends.tolist())
            for offset, count in fixed_spans(end - start, size)]


def evalsha_commands(sha: str, keys: pa.Array, args: pa.Array, lead: bytes,
                     spans: list[tuple[int, int]]) -> list[bytes]:
    """``EVALSHA sha n k1..kn lead args1 ...`` per span of rows (the conditional write):
    ``args`` holds each row's arguments already framed as RESP bulk strings (``per_row`` of
    them), ``lead`` one leading argument."""
    key_parts = bulk(keys)
    per_row = 3
    out = []
    for start, n in spans:
        count = str(n).encode()
        head = b"*%d\r\n$7\r\nEVALSHA\r\n$40\r\n%s\r\n$%d\r\n%s\r\n" % (
            4 + (1 + per_row) * n, sha.encode(), len(count), count,
        )
        out.append(head + bytes(joined(key_parts.slice(start, n))) + b"$%d\r\n%s\r\n" % (len(lead), lead)
                   + bytes(joined(args.slice(start, n))))
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
        self._early = b""
        """Bytes read past the replies of the buffer being drained (the next one's)."""
        self._kept = False
        """Once replies went through redis-py's parser, it may hold buffered bytes: no raw reads."""

    def send_counted(self, buffer: memoryview, count: int) -> None:
        """A buffer of ``count`` commands that each reply with one line (an integer or +OK),
        checked but not kept."""
        self._send([buffer])
        self._drain_all_but_last()
        self._expect.append(("line", count))

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

    def _drain_lines(self, sock: Any, count: int) -> None:
        """Read ``count`` one-line replies straight from the socket, counting newlines in bulk
        (parsing hundreds of thousands of replies one by one costs more than Redis spends
        executing them). Integer and +OK replies hold no ``-``; an error reply starts with it."""
        seen, parts, data = 0, [], self._early
        self._early = b""
        while True:
            if data:
                lines = data.count(b"\n")
                if seen + lines >= count:
                    end = -1
                    for _ in range(count - seen):
                        end = data.index(b"\n", end + 1)
                    parts.append(data[: end + 1])
                    self._early = data[end + 1 :]
                    break
                seen += lines
                parts.append(data)
            try:
                data = sock.recv(1 << 16)
            except OSError as exc:
                raise self._failed("reading replies from", exc) from exc
            if not data:
                raise self._failed("reading replies from", OSError("connection closed by the server"))
        for part in parts:
            if b"-" in part:
                self._expect.clear()
                text = b"".join(parts)
                line = text[text.index(b"-"):].split(b"\r\n")[0].decode(errors="replace")
                raise _refused(self.where, line.lstrip("-")[:200])

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
        if kind == "line" and sock is not None and not self._kept:
            self._drain_lines(sock, count)
            return
        assert not self._early, "raw reads and redis-py's parser mixed on one connection"
        self._kept = self._kept or kind == "keep"
        try:
            for _ in range(count):
                reply = self.conn.read_response(disable_decoding=True)
                if kind == "keep":
                    self.replies.append(reply)
        except redis.ResponseError as exc:
            self._expect.clear()
            raise _refused(self.where, self.scrub(str(exc))) from exc
        except (redis.RedisError, OSError) as exc:
            raise self._failed("reading replies from", exc) from exc


def full_hint(detail: str) -> str:
    """What to do when Redis refused a write for lack of memory (else nothing)."""
    return (" Redis is full (maxmemory): the sync stopped and did not advance its watermark; "
            "free memory or raise maxmemory, then sync again.") if detail.startswith("OOM") else ""


def _refused(where: str, detail: str) -> OnlineStoreError:
    return OnlineStoreError(f"Redis at {where} refused a write: {detail}{full_hint(detail)}")
