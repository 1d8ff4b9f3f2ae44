"""Key names, entity suffixes and buckets: the vectorized buckets and fields of a sync equal the
ones a read computes, a field and its bucket give the entity back, and composite keys never
collide."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from dbt_features.serving.encoder import entity_suffixes, locate_batch
from dbt_features.serving.layout import Keys, bucket_count, entity_suffix, locate, parse_field
from dbt_features.serving.read_plan import locator

_int64 = st.integers(-(2**63), 2**63 - 1)
_buckets = st.integers(1, 100_000)


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


def test_on_a_cluster_a_views_publish_keys_share_one_slot_and_buckets_spread() -> None:
    keys = Keys("p", tagged=True)
    assert (keys.meta("v"), keys.current("v"), keys.lock("v")) == ("{p:v}:meta", "{p:v}:gen", "{p:v}:lock")
    assert len({key_slot(k.encode()) for k in (keys.meta("v"), keys.current("v"), keys.lock("v"))}) == 1
    assert keys.bucket("v", 3, 7) == Keys("p").bucket("v", 3, 7) == "p:v:3:7"
    slots = {key_slot(keys.bucket("v", 3, b).encode()) for b in range(1000)}
    assert len(slots) > 900


def _agree(batch: pa.RecordBatch, names: list[str], dtypes: tuple[str, ...], rows: list[tuple],
           buckets: int) -> None:
    """The sync's vectorized placement equals the per-row one, the read's locator agrees, and
    each (bucket, field) gives its entity back."""
    got_buckets, got_fields = locate_batch(batch, names, dtypes, buckets)
    vectorized = list(zip(got_buckets.tolist(), got_fields.to_pylist()))
    per_row = [locate(row, dtypes, buckets) for row in rows]
    assert vectorized == per_row
    keys: list = []
    fields: list = []
    values = [row[0] for row in rows] if len(dtypes) == 1 else [entity_suffix(r) for r in rows]
    locator("P:v:1:", dtypes, buckets)(values, keys, fields)
    assert keys == [f"P:v:1:{b}" for b, _ in per_row]
    assert [str(f).encode() if isinstance(f, int) else f for f in fields] == [f for _, f in per_row]
    assert all(0 <= b < buckets for b, _ in per_row)
    assert [parse_field(f, b, dtypes, buckets) for b, f in per_row] == [tuple(r) for r in rows]


@given(st.lists(_int64, min_size=1, max_size=30), _buckets)
def test_integer_keys_bucket_the_same_vectorized_and_per_row(keys: list[int], buckets: int) -> None:
    _agree(pa.RecordBatch.from_pydict({"k": pa.array(keys, pa.int64())}), ["k"], ("int64",),
           [(k,) for k in keys], buckets)


@given(st.lists(st.text(max_size=12), min_size=1, max_size=30), _buckets)
def test_string_keys_bucket_the_same_vectorized_and_per_row(keys: list[str], buckets: int) -> None:
    _agree(pa.RecordBatch.from_pydict({"k": pa.array(keys, pa.string())}), ["k"], ("string",),
           [(k,) for k in keys], buckets)


@given(st.lists(st.tuples(_int64, st.text(max_size=8)), min_size=1, max_size=30), _buckets)
def test_composite_keys_bucket_the_same_vectorized_and_per_row(keys: list[tuple[int, str]],
                                                              buckets: int) -> None:
    batch = pa.RecordBatch.from_pydict({"a": pa.array([k[0] for k in keys], pa.int64()),
                                        "b": pa.array([k[1] for k in keys], pa.string())})
    _agree(batch, ["a", "b"], ("int64", "string"), keys, buckets)


@given(st.integers(0, 10**8))
def test_bucket_counts_are_primes_covering_the_entities(entities: int) -> None:
    buckets = bucket_count(entities)
    assert buckets >= 1 and buckets * 112 >= entities
    assert buckets <= 2 or all(buckets % f for f in range(2, int(buckets ** 0.5) + 1))
