"""The replay's parts without a warehouse or Redis: the column comparison against the one-value
comparison `verify` uses, the per-row verdicts and causes against a brute-force reference,
the served-log format checks, the report and its metrics."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from dbt_features.errors import UsageError
from dbt_features.registry import Column, Entity, Feature, FeatureView
from dbt_features.relation import Relation
from dbt_features.serving.metrics import render_consistency
from dbt_features.serving.replay import ReplayOptions, _compare
from dbt_features.serving.replay_report import (
    FeatureReplay, ReplayReport, ViewReplay, load_consistency, save_replay,
)
from dbt_features.serving.replay_source import ServedRows, read_parquet_log
from dbt_features.serving.value_compare import difference, same_values

UTC = pa.timestamp("us", tz="UTC")
T0 = datetime(2026, 5, 1, 12, tzinfo=timezone.utc)
TTL = 3600
VIEW = FeatureView(
    name="risk", unique_id="model.p.risk", package="p", file="models/risk.sql", yaml_file=None,
    relation=Relation("db", "main", "risk"), relation_name=None, materialized="table",
    entity=Entity("merchant", (Column("merchant_id", "int64", "bigint"),)),
    timestamp=Column("feature_at", "timestamp", "timestamp"),
    created_timestamp=Column("computed_at", "timestamp", "timestamp"),
    ttl_seconds=TTL, online=True,
    features=(Feature("rate", "double", "double", None, "f1"),
              Feature("category", "string", "varchar", None, "f2")),
    owner=None, tags=(), description=None, version=1, fingerprint="current", compiled_sql=None,
)

# -- comparing a column at once, as one value at a time ------------------------------------

DOUBLES = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.0, 1.5]))
MOMENTS = st.one_of(st.none(), st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1)))
CASES = {
    "double": (DOUBLES, pa.float64()),
    "int64": (st.one_of(st.none(), st.integers(-3, 3)), pa.int64()),
    "string": (st.one_of(st.none(), st.sampled_from(["", "a", "b", "é"])), pa.string()),
    "bool": (st.one_of(st.none(), st.booleans()), pa.bool_()),
    "date": (st.one_of(st.none(), st.dates(min_value=date(1970, 1, 1), max_value=date(2100, 1, 1))),
             pa.date32()),
}


@pytest.mark.parametrize("dtype", sorted(CASES))
@given(data=st.data())
def test_a_column_compares_as_each_value_does(dtype: str, data: st.DataObject) -> None:
    values, arrow = CASES[dtype]
    pairs = data.draw(st.lists(st.tuples(values, values), max_size=20))
    off = pa.array([p[0] for p in pairs], arrow)
    on = pa.array([p[1] for p in pairs], arrow)
    got = same_values(off, on, dtype).tolist()
    assert got == [difference(a, b, dtype) is None for a, b in pairs]


@given(pairs=st.lists(st.tuples(MOMENTS, MOMENTS), max_size=20))
def test_timestamps_compare_as_instants_naive_against_aware(pairs: list) -> None:
    off = pa.array([p[0] for p in pairs], pa.timestamp("us"))
    on = pa.array([p[1] and p[1].replace(tzinfo=timezone.utc) for p in pairs], UTC)
    expected = [difference(a, b and b.replace(tzinfo=timezone.utc), "timestamp") is None
                for a, b in pairs]
    assert same_values(off, on, "timestamp").tolist() == expected


def test_a_served_column_of_another_type_differs_wherever_it_has_a_value() -> None:
    off = pa.array([1.0, None, 2.0], pa.float64())
    on = pa.array([1, None, None], pa.int64())
    assert same_values(off, on, "double").tolist() == [False, True, False]
    assert difference(1.0, 1, "double") == "type"


# -- per-row verdicts and causes, against a brute-force reference ----------------------------

ROW = st.fixed_dictionaries({
    "status": st.sampled_from(["present", "not_found", "expired"]),
    "served_age": st.integers(0, 2 * TTL),  # seconds before the request
    "offline_age": st.one_of(st.none(), st.integers(0, TTL)),  # None: no offline row in ttl
    "created_after": st.booleans(),  # the offline row was created after the request
    "rate": st.sampled_from([None, 0.5, 0.25, math.nan]),
    "offline_rate": st.sampled_from([None, 0.5, 0.25, math.nan]),
    "fingerprint": st.sampled_from([None, "current", "old"]),
    "asked": st.sampled_from([["rate"], ["category"], ["rate", "category"]]),
})


def _reference(row: dict, as_known_at: bool) -> tuple[bool, str]:
    """(mismatch of `rate`, its cause), one served row at a time, by the documented rules."""
    present = row["status"] == "present"
    offline = row["offline_age"] is not None and not (as_known_at and row["created_after"])
    served_rate = row["rate"] if present else None
    off_rate = row["offline_rate"] if offline else None
    if present:
        ok = offline and difference(off_rate, served_rate, "double") is None
    else:
        ok = not offline
    if ok:
        return False, ""
    if offline and row["created_after"] and not as_known_at:
        return True, "late_arrival"
    if present and not offline and row["served_age"] > TTL:
        return True, "served_after_ttl"
    if offline and (not present or row["offline_age"] < row["served_age"]):
        return True, "sync_lag"
    if row["fingerprint"] not in (None, "current"):
        return True, "definition_changed"
    if as_known_at and present and (not offline or row["offline_age"] > row["served_age"]):
        return True, "served_before_created"
    return True, "unknown"


def _tables(rows: list[dict], as_known_at: bool) -> tuple[ServedRows, pa.Table]:
    at = [T0 + timedelta(minutes=i) for i in range(len(rows))]
    present = [r["status"] == "present" for r in rows]
    offline = [r["offline_age"] is not None and not (as_known_at and r["created_after"])
               for r in rows]
    log = pa.table({
        "request_time": pa.array(at, UTC),
        "request_id": pa.array([f"r{i}" for i in range(len(rows))]),
        "merchant_id": pa.array(range(len(rows)), pa.int64()),
        "generation": pa.array(["1.a"] * len(rows)),
        "fingerprint": pa.array([r["fingerprint"] for r in rows], pa.string()),
        "status": pa.array([r["status"] for r in rows]),
        "event_timestamp": pa.array([a - timedelta(seconds=r["served_age"]) if r["status"] != "not_found"
                                     else None for a, r in zip(at, rows)], UTC),
        "served_features": pa.array([r["asked"] for r in rows], pa.list_(pa.string())),
        "rate": pa.array([r["rate"] if p else None for r, p in zip(rows, present)], pa.float64()),
        "category": pa.array(["x" if p else None for p in present], pa.string()),
    })
    naive = [a.replace(tzinfo=None) for a in at]
    off = pa.table({
        "risk__rate": pa.array([r["offline_rate"] if o else None for r, o in zip(rows, offline)],
                               pa.float64()),
        "risk__category": pa.array(["x" if o else None for o in offline], pa.string()),
        "risk__feature_at": pa.array([a - timedelta(seconds=r["offline_age"]) if o else None
                                      for a, r, o in zip(naive, rows, offline)], pa.timestamp("us")),
        "risk__computed_at": pa.array([a + timedelta(seconds=1 if r["created_after"] else -1) if o
                                       else None for a, r, o in zip(naive, rows, offline)],
                                      pa.timestamp("us")),
    })
    return ServedRows(VIEW, log, "test"), off


SAME_TIME = {"status": "present", "served_age": 60, "offline_age": 60, "created_after": False,
             "rate": 0.5, "offline_rate": 0.25, "fingerprint": "current", "asked": ["rate"]}
"""Served and offline rows of one event time with other values: known by the request, so not
served before created (``unknown``); the edges a random row rarely lands on."""


@given(rows=st.lists(ROW, min_size=1, max_size=30), as_known_at=st.booleans())
@example(rows=[SAME_TIME], as_known_at=True)
@example(rows=[{**SAME_TIME, "offline_age": 61}], as_known_at=True)
@example(rows=[{**SAME_TIME, "offline_age": None}], as_known_at=True)
def test_verdicts_and_causes_equal_the_row_by_row_reference(rows: list, as_known_at: bool) -> None:
    log, offline = _tables(rows, as_known_at)
    check = _compare(log, offline, ReplayOptions(as_known_at=as_known_at, examples=50))
    by_feature = {f.feature: f for f in check.features}
    asked = [r for r in rows if "rate" in r["asked"]]
    expected = [_reference(r, as_known_at) for r in asked]
    causes: dict[str, int] = {}
    for wrong, cause in expected:
        if wrong:
            causes[cause] = causes.get(cause, 0) + 1
    if not asked:
        assert "rate" not in by_feature
        return
    rate = by_feature["rate"]
    assert (rate.compared, rate.mismatched) == (len(asked), sum(w for w, _ in expected))
    assert rate.causes == causes
    assert check.rows == len(rows) and check.requests == len(rows)


# -- the served-log format -----------------------------------------------------------------


def test_a_file_missing_columns_names_them(tmp_path: Path) -> None:
    folder = tmp_path / "served" / "risk"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"request_time": pa.array([T0], UTC), "merchant_id": [1]}),
                   folder / "part-1.parquet")
    with pytest.raises(UsageError) as caught:
        read_parquet_log(tmp_path / "served")
    message = str(caught.value)
    assert "part-1.parquet lacks the column(s) request_id, generation, fingerprint, status, " \
           "event_timestamp, served_features" in message


def test_temporary_files_of_an_export_in_progress_are_skipped(tmp_path: Path) -> None:
    log, _ = _tables([{"status": "present", "served_age": 1, "offline_age": 1, "created_after": False,
                       "rate": 0.5, "offline_rate": 0.5, "fingerprint": None, "asked": ["rate"]}],
                     False)
    folder = tmp_path / "risk"
    folder.mkdir()
    pq.write_table(log.table, folder / "part-1.parquet")
    (folder / ".part-2.parquet").write_bytes(b"half a file")
    assert read_parquet_log(tmp_path)["risk"][0].num_rows == 1
    assert read_parquet_log(folder / "part-1.parquet")["risk"][0].num_rows == 1


def test_the_mismatch_rate_is_a_share() -> None:
    for bad in (-0.1, 1.5, math.nan):
        with pytest.raises(UsageError, match="give a rate from 0 to 1"):
            ReplayOptions(max_mismatch_rate=bad)
    assert ReplayOptions(max_mismatch_rate=1).max_mismatch_rate == 1


# -- the report and /metrics ------------------------------------------------------------------


def _report(mismatched: int, threshold: float) -> ReplayReport:
    features = (FeatureReplay("risk", "rate", 200, mismatched, {"sync_lag": mismatched} if mismatched else {}),
                FeatureReplay("risk", "category", 100, 0, {}))
    view = ViewReplay("risk", "log/risk", 200, 150, ("current",), "current", features)
    return ReplayReport(False, threshold, (view,), "2026-05-01T12:00:00+00:00")


def test_the_exit_code_follows_the_threshold_per_feature(tmp_path: Path) -> None:
    assert _report(0, 0).exit_code == 0
    assert _report(1, 0).exit_code == 1 and _report(1, 0).failing[0].feature == "rate"
    assert _report(2, 0.01).exit_code == 0 and _report(3, 0.01).exit_code == 1
    text = _report(3, 0.01).format()
    assert "risk:rate" in text and "1.50%" in text and "sync_lag 3" in text
    assert "sync more often" in text.splitlines()[-1]
    save_replay(tmp_path / "replay.json", _report(3, 0.01))
    ratios = load_consistency(tmp_path / "replay.json").ratios
    assert ratios == {("risk", "rate"): 1 - 3 / 200, ("risk", "category"): 1.0}
    rendered = render_consistency(ratios)
    assert 'dbt_features_served_consistency_ratio{view="risk",feature="rate"} 0.985' in rendered
    assert "# TYPE dbt_features_served_consistency_ratio gauge" in rendered


def test_no_or_a_broken_report_exposes_nothing(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("{not json")
    assert load_consistency(tmp_path / "broken.json").ratios == {}
    assert load_consistency(tmp_path / "missing.json").ratios == {}
    assert load_consistency(None).ratios == {}
    assert render_consistency({}) == ""


def test_the_report_as_json_carries_every_count() -> None:
    data = _report(3, 0.01).to_dict()
    assert data["ok"] is False and data["failing"] == ["risk:rate"] and data["rows"] == 200
    (view,) = data["views"]
    assert view["mismatched"] == 3
    assert view["features"][0] == {"view": "risk", "feature": "rate", "compared": 200,
                                   "mismatched": 3, "mismatch_rate": 0.015,
                                   "causes": {"sync_lag": 3}, "examples": []}
    assert replace(_report(0, 0), views=()).to_dict()["ok"] is True


def test_a_warehouse_log_without_lists_or_time_zones_reads_the_same() -> None:
    """A model of the log may hold served_features as comma-separated text and times without
    a time zone (UTC): both become the exported form."""
    from dbt_features.serving.replay_source import normalized

    table = pa.table({"request_time": pa.array([T0.replace(tzinfo=None)], pa.timestamp("us")),
                      "event_timestamp": pa.array([None], pa.timestamp("us")),
                      "served_features": pa.array(["rate,category"])})
    got = normalized(table)
    assert got.column("request_time").type == UTC
    assert got.column("request_time")[0].as_py() == T0
    assert got.column("served_features").to_pylist() == [["rate", "category"]]
    with pytest.raises(UsageError, match="served_features is int64"):
        normalized(table.set_column(2, "served_features", pa.array([1])))
