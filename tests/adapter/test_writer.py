"""Framing of conditional writes: every row in exactly one call, and on a Redis Cluster every
call within one bucket (a script's keys must share a slot there)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from dbt_features.serving.writer import Grouped, bucket_spans, fixed_spans


@given(st.integers(0, 2_000), st.integers(1, 600))
def test_fixed_spans_cover_every_row_once(rows: int, size: int) -> None:
    spans = fixed_spans(rows, size)
    covered = [i for start, n in spans for i in range(start, start + n)]
    assert covered == list(range(rows)) and all(0 < n <= size for _, n in spans)


@given(st.lists(st.integers(0, 40), min_size=1, max_size=400), st.integers(1, 8))
def test_bucket_spans_never_cross_a_bucket(buckets: list[int], size: int) -> None:
    array = np.array(buckets, dtype=np.int64)
    groups = Grouped.of(array)
    ordered = array[groups.order]
    spans = bucket_spans(groups, size)
    covered = [i for start, n in spans for i in range(start, start + n)]
    assert covered == list(range(len(buckets)))
    for start, n in spans:
        assert 0 < n <= size and len(set(ordered[start:start + n].tolist())) == 1
