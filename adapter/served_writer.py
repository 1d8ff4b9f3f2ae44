"""The served-value log's writer on a Redis Cluster: a thread that sends entries to the stream.

On a single Redis the read script writes each entry itself (``scripts.READ_LOGGED``). On a
Redis Cluster a read is one script call per master and the stream lives on one of them, so an
entry would cost the read another round trip: instead the read appends the entry's fields to a
bounded in-memory buffer (no Redis call, no lock), and this daemon thread drains it every few
milliseconds, in small batches of pipelined ``XADD ... MAXLEN ~ N`` through the cluster
client. When the buffer is full, or Redis refuses or cannot be reached, entries are dropped and
counted; a read never waits for the log and never fails because of it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any, Callable

from .cluster import REDIS_FAILURES, Client

log = logging.getLogger("dbt_features.served_log")

BATCH = 32
"""Entries per round trip: a read whose answer arrives while the writer thread runs Python
waits for the GIL, so a batch is kept to tens of microseconds of the writer's work."""
IDLE_S = 0.005
"""How long the writer sleeps when the buffer is empty (no wake-up call on the read path)."""
GATHER_S = 0.001
"""After a batch that drained the buffer, the writer lets entries gather this long: fewer,
fuller batches wake it (and take the GIL) less often."""
RETRY_S = 1.0
"""After Redis failed, entries are dropped for this long before the writer tries again."""


class StreamWriter:
    """A bounded buffer of entries (each a list of ``XADD`` arguments) and the thread that
    writes them with ``client``."""

    def __init__(self, client: Client, head: list[Any], buffer: int,
                 scrub: Callable[[str], str]) -> None:
        self.client = client
        self.head = head
        """``XADD`` (a str: the cluster client routes by the command name) and its arguments up
        to the entry's fields."""
        self.capacity = buffer
        self.scrub = scrub
        self.written = 0
        self.dropped_full = 0  # counted by readers only
        self.dropped_redis = 0  # counted by the writer only
        self._buffer: deque[list[bytes]] = deque()
        self._retry_at = 0.0
        self._stop = threading.Event()
        self._idle = threading.Event()
        self.start()

    def start(self) -> None:
        """Start the thread (again, in a forked child: the parent's entries are its own)."""
        self._buffer.clear()
        self._thread = threading.Thread(target=self._run, name="dbt-features-served-log",
                                        daemon=True)
        self._thread.start()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def append(self, fields: list[bytes]) -> None:
        if len(self._buffer) >= self.capacity:
            self.dropped_full += 1
            return
        self._buffer.append(fields)

    def flush(self, timeout: float) -> bool:
        """Wait until what was appended so far is written or dropped."""
        deadline = time.monotonic() + timeout
        while self._buffer or not self._idle.is_set():
            if time.monotonic() > deadline or not self._thread.is_alive():
                return False
            time.sleep(0.002)
        return True

    def close(self, timeout: float) -> None:
        self.flush(timeout)
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._buffer:
                self._idle.set()
                time.sleep(IDLE_S)
                continue
            self._idle.clear()
            batch = [self._buffer.popleft() for _ in range(min(BATCH, len(self._buffer)))]
            if time.monotonic() < self._retry_at:
                self.dropped_redis += len(batch)
                continue
            try:
                failures = self._send(batch)
            except Exception as exc:  # noqa: BLE001 - the log never takes the server down
                failures = [exc] * len(batch)
            self.written += len(batch) - len(failures)
            self.dropped_redis += len(failures)
            if failures:
                self._retry_at = time.monotonic() + RETRY_S
                if not isinstance(failures[0], REDIS_FAILURES):
                    log.warning("served log: entries dropped: %s: %s",
                                type(failures[0]).__name__, self.scrub(str(failures[0]))[:300])
            elif len(batch) < BATCH:  # drained: let entries gather, fewer wake-ups
                time.sleep(GATHER_S)
        self._idle.set()

    def _send(self, batch: list[list[bytes]]) -> list[Exception]:
        """Pipelined; the replies that are errors (an entry Redis refused) come back."""
        pipe = self.client.pipeline(transaction=False)
        for fields in batch:
            pipe.execute_command(*self.head, *fields)
        return [r for r in pipe.execute(raise_on_error=False) if isinstance(r, Exception)]
