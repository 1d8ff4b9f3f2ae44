"""Key names and entity suffixes: the vectorized suffixes of a sync equal the ones a read
computes, and composite keys never collide."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from dbt_features.serving.encoder import entity_suffixes
from dbt_features.serving.layout import Keys, entity_suffix


@given(st.lists(st.tuples(st.text(max_size=6), st.text(max_size=6)), min_size=1, max_size=10))
def test_composite_key_suffixes_agree_and_never_collide(pairs: list[tuple[str, str]]) -> None:
    batch = pa.RecordBatch.from_pydict({"a": [p[0] for p in pairs], "b": [p[1] for p in pairs]})
    vectorized = [s.decode() for s in entity_suffixes(batch, ["a", "b"]).to_pylist()]
    assert vectorized == [entity_suffix(p) for p in pairs]
    assert len(set(vectorized)) == len(set(pairs))


def test_integer_keys_are_decimal_and_single_string_keys_verbatim() -> None:
    batch = pa.RecordBatch.from_pydict({"k": pa.array([42, -7], pa.int32())})
    assert entity_suffixes(batch, ["k"]).to_pylist() == [b"42", b"-7"]
    assert entity_suffix([42]) == "42" and entity_suffix(["a:b"]) == "a:b"


def test_key_names_and_scan_patterns_escape_glob_characters() -> None:
    keys = Keys("team[1]*")
    assert keys.meta("v") == "team[1]*:v:meta"
    assert keys.generation("v", 3) == "team[1]*:v:3:"
    assert keys.generation_pattern("v", 3) == "team\\[1\\]\\*:v:3:*"
