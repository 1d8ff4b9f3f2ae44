"""Definitions that must fail validation, not a later command: a ttl out of bounds or of the wrong
type, names that cannot be referenced, and column names colliding under --full-feature-names."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

from helpers import make_project
from dbt_features import FeatureStore
from dbt_features.cli import main
from dbt_features.definition import MAX_TTL_SECONDS, parse_ttl, reference_problem


def model(meta: str, select: str = "1::bigint as customer_id, timestamp '2026-01-01' as ts, "
          "1.5::double as f1") -> str:
    return f"{{{{ config(meta={{'feature_store': {meta}}}) }}}}\nselect {select}\n"


KEYS = "1::bigint as customer_id, timestamp '2026-01-01' as ts"
BROKEN = {
    "models/huge_ttl.sql": model("{'entity': 'customer_id', 'timestamp': 'ts', "
                                 "'ttl': '1000000d'}"),
    "models/false_ttl.sql": model("{'entity': 'customer_id', 'timestamp': 'ts', 'ttl': false}"),
    "models/colon.sql": model("{'entity': 'customer_id', 'timestamp': 'ts'}",
                              f'{KEYS}, 1.5::double as "a:b"'),
    "models/comma.sql": model("{'entity': 'customer_id', 'timestamp': 'ts'}",
                              f'{KEYS}, 1.5::double as "x,y"'),
    "models/star.sql": model("{'entity': 'customer_id', 'timestamp': 'ts'}",
                             f'{KEYS}, 1.5::double as "*"'),
}
EXPECTED = [
    "model colon (models/colon.sql): feature column 'a:b' cannot be referenced as colon:a:b "
    "because it contains ':'; rename it or alias it in the model's SQL (e.g. `as a_b`).",
    "model comma (models/comma.sql): feature column 'x,y' cannot be referenced as comma:x,y "
    "because it contains ','; rename it or alias it in the model's SQL (e.g. `as x_y`).",
    "model false_ttl (models/false_ttl.sql): config.meta.feature_store.ttl False is not a "
    "duration: write a whole number and a unit, e.g. '30d', or 0 (or leave ttl out) for no ttl.",
    "model huge_ttl (models/huge_ttl.sql): config.meta.feature_store.ttl '1000000d' is longer "
    "than 36500d (100 years), the longest ttl; write a shorter one, or 0 for no ttl.",
    "model star (models/star.sql): feature column '*' cannot be referenced as star:* because it "
    "is '*', which means every feature; rename it or alias it in the model's SQL (e.g. `as "
    "feature_1`).",
]


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("limits") / "proj", BROKEN)


def test_validate_reports_each(broken):
    result = CliRunner().invoke(main, ["validate", "--project-dir", str(broken)])
    assert result.exit_code == 2
    assert result.stderr == (f"Error: {len(EXPECTED)} problems in the feature definitions:\n"
                             + "".join(f"  - {m}\n" for m in EXPECTED))


@pytest.mark.parametrize(("value", "seconds"), [
    ("30d", 30 * 86400), ("0", None), (0, None), (None, None), ("0d", None),
    ("36500d", MAX_TTL_SECONDS), ("5214w", 5214 * 7 * 86400),
])
def test_ttl_accepted(value, seconds):
    assert parse_ttl(value) == seconds


@pytest.mark.parametrize(("value", "message"), [
    (False, "ttl False is not a duration"),
    (True, "ttl True is not a duration"),
    ("36501d", "is longer than 36500d (100 years)"),
    ("99999999999999999999w", "is longer than 36500d (100 years)"),
    (30, "ttl 30 is not a duration"),
    ("-5d", "ttl '-5d' is not a duration"),
])
def test_ttl_refused(value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_ttl(value)


@pytest.mark.parametrize(("name", "problem"), [
    ("avg_30d", None), ("a b", None), ("a:b", "contains ':'"), ("a,b", "contains ','"),
    (" a", "has leading or trailing spaces"), ("*", "is '*', which means every feature"),
    ("a:b,c", "contains ':' and ','"),
])
def test_reference_problem(name, problem):
    assert reference_problem(name) == problem


@pytest.fixture(scope="module")
def dunder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("dunder") / "proj", {
        "models/x.sql": model("{'entity': 'customer_id', 'timestamp': 'ts'}",
                              f"{KEYS}, 1.5::double as y__z"),
        "models/x__y.sql": model("{'entity': 'customer_id', 'timestamp': 'ts'}",
                                 f"{KEYS}, 2.5::double as z"),
    })


def test_full_feature_names_collision_names_both(dunder, tmp_path):
    spine = tmp_path / "spine.csv"
    spine.write_text("customer_id,event_timestamp\n1,2026-02-01 00:00:00\n")
    result = CliRunner().invoke(main, [
        "training-set", "--project-dir", str(dunder), "--spine", str(spine),
        "-f", "x:y__z,x__y:z", "--full-feature-names", "-o", str(tmp_path / "o.parquet")])
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: features x:y__z and x__y:z would both be column 'x__y__z' with "
        "--full-feature-names (full_feature_names=True); request only one of them, or rename "
        "one of the columns in its model.\n")
    store = FeatureStore(str(dunder))
    table = pa.table({"customer_id": [1], "event_timestamp": pa.array([0], pa.timestamp("s"))})
    both = store.get_training_set(table, ["x:y__z", "x__y:z"])
    assert both.column_names == ["customer_id", "event_timestamp", "y__z", "z"]
