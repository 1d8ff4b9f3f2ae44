"""Reading ahead: a thread pulls the next batches from the warehouse while the caller encodes
and writes the current one.

DuckDB computes and the database drivers wait with the GIL released, so the warehouse's work
overlaps the sync's own (encoding, framing, Redis): measured at 1M entities on DuckDB, the
query is about half of a sync's time. At most ``depth`` batches wait in between, so memory
stays bounded. The producer owns the warehouse connection until the block ends; leaving the
block early (an error, Ctrl-C) interrupts its query and waits for it.
"""

from __future__ import annotations

import queue
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")

_POLL_SECONDS = 0.1


@dataclass(frozen=True)
class _Failed:
    error: BaseException


class _Done:
    pass


@dataclass
class _Channel(Generic[T]):
    items: "queue.Queue[T | _Failed | _Done]"
    stop: threading.Event

    def put(self, item: "T | _Failed | _Done") -> bool:
        """Hand ``item`` over, unless the consumer left (then False)."""
        while not self.stop.is_set():
            try:
                self.items.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False


@contextmanager
def read_ahead(produce: Callable[[], Iterator[T]], *, depth: int,
               interrupt: Callable[[], None]) -> Iterator[Iterator[T]]:
    """Iterate ``produce()`` in a thread of its own, ``depth`` items ahead of the consumer.
    An exception of the producer is raised in the consumer, where it would have been raised
    without reading ahead. ``interrupt`` stops the producer's current blocking call."""
    channel: _Channel[T] = _Channel(queue.Queue(maxsize=depth), threading.Event())
    thread = threading.Thread(target=_run, args=(produce, channel), name="dbt-features-read-ahead",
                              daemon=True)
    thread.start()
    try:
        yield _consume(channel)
    finally:
        channel.stop.set()
        if thread.is_alive():
            interrupt()
        thread.join()


def _run(produce: Callable[[], Iterator[T]], channel: _Channel[T]) -> None:
    items = produce()
    try:
        for item in items:
            if not channel.put(item):
                return
        channel.put(_Done())
    except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
        channel.put(_Failed(exc))
    finally:
        close = getattr(items, "close", None)  # a generator's own cleanup, in its own thread
        if close is not None:
            close()


def _consume(channel: _Channel[T]) -> Iterator[T]:
    while True:
        item = channel.items.get()
        if isinstance(item, _Done):
            return
        if isinstance(item, _Failed):
            raise item.error
        yield item
