"""Reading ahead in a thread: the consumer sees what the producer made, in order, its errors
where they would have been raised, and leaving early stops the producer and cleans it up."""

from __future__ import annotations

import threading
import time
from typing import Iterator

import pytest
from hypothesis import given, strategies as st

from dbt_features.serving.read_ahead import read_ahead


@given(items=st.lists(st.integers(), max_size=50), depth=st.integers(1, 5))
def test_items_arrive_in_order_whatever_the_depth(items: list[int], depth: int) -> None:
    with read_ahead(lambda: iter(items), depth=depth, interrupt=lambda: None) as got:
        assert list(got) == items


def test_the_producers_error_is_raised_after_what_it_made() -> None:
    def produce() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("the warehouse failed")

    seen: list[int] = []
    with pytest.raises(ValueError, match="the warehouse failed"):
        with read_ahead(produce, depth=4, interrupt=lambda: None) as got:
            for item in got:
                seen.append(item)
    assert seen == [1, 2]


def test_leaving_early_interrupts_the_producer_and_closes_it() -> None:
    """The consumer fails while the producer is blocked in a slow call (a query): the call is
    interrupted, the producer's own cleanup runs, and the block does not end before that."""
    interrupted = threading.Event()
    closed = threading.Event()

    def produce() -> Iterator[int]:
        try:
            yield 1
            interrupted.wait(timeout=30)  # a query, until interrupt() stops it
            if interrupted.is_set():
                raise RuntimeError("interrupted")
            yield 2
        finally:
            closed.set()

    started = time.perf_counter()
    with pytest.raises(KeyError):
        with read_ahead(produce, depth=1, interrupt=interrupted.set) as got:
            next(got)
            raise KeyError("the consumer failed")
    assert interrupted.is_set() and closed.is_set()
    assert time.perf_counter() - started < 20
    assert not [t for t in threading.enumerate() if t.name == "dbt-features-read-ahead"]


def test_a_producer_blocked_on_a_full_queue_stops_when_the_consumer_leaves() -> None:
    made: list[int] = []
    closed = threading.Event()

    def produce() -> Iterator[int]:
        try:
            for i in range(1000):
                made.append(i)
                yield i
        finally:
            closed.set()

    with read_ahead(produce, depth=2, interrupt=lambda: None) as got:
        assert next(got) == 0
    assert closed.is_set() and len(made) <= 4
