"""Online reads: typed values with statuses and event times, clear errors for bad input."""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import redis

from dbt_features.errors import DefinitionError, OnlineStoreError, UsageError
from stored import stored
from dbt_features.serving.servable import check_servable
from dbt_features.store import FeatureStore
from helpers import DBT_FEATURES, REDIS_URL, make_project


@pytest.fixture
def synced(duck_project: Path) -> FeatureStore:
    store = FeatureStore(project_dir=str(duck_project))
    store.sync()
    return store


def test_values_keep_their_types_with_status_and_event_time(synced: FeatureStore) -> None:
    response = synced.get_online_features(
        ["customer_spend:txn_count_7d", "customer_spend:avg_amount_30d", "merchant_risk:*"],
        [{"customer_id": 1, "merchant_id": np.int64(2)}, {"customer_id": -5, "merchant_id": 999}],
    )
    assert response.features == (
        "customer_spend:txn_count_7d", "customer_spend:avg_amount_30d",
        "merchant_risk:merchant_txn_count_30d", "merchant_risk:merchant_fraud_rate_30d",
        "merchant_risk:merchant_category",
    )
    first = [column[0] for column in response.values]
    assert [type(v) for v in first] == [int, float, int, float, str]
    assert all(s.value == "present" for column in response.statuses for s in column[:1])
    assert all(column[1] is None for column in response.values)
    assert {s.value for column in response.statuses for s in column[1:]} == {"not_found"}
    assert response.event_timestamps[2][0].tzinfo is not None
    feast = response.to_dict(feast=True)
    assert feast["metadata"]["feature_names"] == list(response.features)
    assert feast["results"][0]["statuses"] == ["PRESENT", "NOT_FOUND"]
    assert feast["results"][0]["event_timestamps"][0].endswith("+00:00")
    table = response.to_arrow()
    assert table.schema.field("customer_spend:txn_count_7d").type == pa.int64()
    assert table.column("merchant_risk:merchant_category__status").to_pylist() == ["present", "not_found"]


def test_values_outside_ttl_are_expired_not_served(synced: FeatureStore, redis_prefix: str) -> None:
    """Redis expires keys at event time + ttl; reads check it too (a value Redis still holds,
    e.g. written with another clock, is not served)."""
    client = redis.Redis.from_url(REDIS_URL)
    place = stored(client, redis_prefix, "merchant_risk", 3)
    blob = bytearray(place.get(client))
    old = int.from_bytes(blob[:8], "big", signed=True) - 3 * 86400 * 1_000_000
    blob[:8] = old.to_bytes(8, "big", signed=True)
    place.put(client, bytes(blob))  # its bucket's expiry is its neighbours' latest
    response = synced.get_online_features(["merchant_risk:merchant_category"], [{"merchant_id": 3}])
    assert response.statuses[0][0].value == "expired" and response.values[0][0] is None
    assert response.statuses[0][0].feast == "OUTSIDE_MAX_AGE"
    assert response.event_timestamps[0][0] == datetime.fromtimestamp(old / 1e6, timezone.utc)


def test_unknown_views_and_features_name_the_closest(synced: FeatureStore) -> None:
    with pytest.raises(UsageError, match="no feature view named 'customer_spnd' .*'customer_spend'"):
        synced.get_online_features(["customer_spnd:avg_amount_30d"], [{"customer_id": 1}])
    with pytest.raises(UsageError, match="has no feature 'avg_amount_31d' .*'avg_amount_30d'"):
        synced.get_online_features(["customer_spend:avg_amount_31d"], [{"customer_id": 1}])


def test_entity_values_are_checked_against_the_key_types(synced: FeatureStore) -> None:
    with pytest.raises(UsageError, match=r"entity_rows\[1\]\['customer_id'\] is '42' \(str\); "
                                         r"customer_id of entity customer is int64"):
        synced.get_online_features(["customer_spend:*"], [{"customer_id": 1}, {"customer_id": "42"}])
    with pytest.raises(UsageError, match=r"is True \(bool\)"):
        synced.get_online_features(["customer_spend:*"], [{"customer_id": True}])
    with pytest.raises(UsageError, match=r"entity_rows\[0\] has no 'merchant_id'"):
        synced.get_online_features(["merchant_risk:*"], [{"customer_id": 1}])


def test_cli_get_checks_types_and_prints_json(synced: FeatureStore, duck_project: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([DBT_FEATURES, "get", *args], cwd=duck_project, capture_output=True,
                              text=True, env=dict(os.environ), timeout=60)

    bad = cli("customer_spend", "--entity", "customer_id=abc")
    assert bad.returncode == 2 and "customer_id is an integer key (int64)" in bad.stderr
    assert "Traceback" not in bad.stderr
    unknown = cli("customer_spnd", "--entity", "customer_id=1")
    assert unknown.returncode == 2 and "did you mean 'customer_spend'?" in unknown.stderr
    good = cli("customer_spend:txn_count_7d", "-e", "customer_id=1", "-e", "customer_id=2", "--json")
    assert good.returncode == 0, good.stderr
    import json

    data = json.loads(good.stdout)
    assert data["entities"] == [{"customer_id": 1}, {"customer_id": 2}]
    values = data["results"][0]["values"]
    assert all(isinstance(v, int) or v is None for v in values) and any(values)
    text = cli("merchant_risk", "-e", "merchant_id=1")
    assert "merchant_risk:merchant_category" in text.stdout and "present" in text.stdout


def test_a_view_never_synced_is_a_clear_error(duck_project: Path) -> None:
    store = FeatureStore(project_dir=str(duck_project))
    with pytest.raises(OnlineStoreError, match="'merchant_risk' has never been synced.*"
                                               "dbt-features sync --select merchant_risk"):
        store.get_online_features(["merchant_risk:*"], [{"merchant_id": 1}])
    assert store.online_status()[0].synced is False


def test_views_not_online_or_without_timestamp_cannot_be_served(duck_project: Path) -> None:
    view = FeatureStore(project_dir=str(duck_project)).registry.view("customer_spend")
    with pytest.raises(UsageError, match="'customer_spend' .*is not online: set `online: true`"):
        check_servable(replace(view, online=False))
    with pytest.raises(DefinitionError, match="'customer_spend' .*has no timestamp.*timestamp"):
        check_servable(replace(view, timestamp=None))


def test_status_cli_reports_each_view(synced: FeatureStore, duck_project: Path) -> None:
    result = subprocess.run([DBT_FEATURES, "status", "--json"], cwd=duck_project,
                            capture_output=True, text=True, env=dict(os.environ), timeout=60)
    assert result.returncode == 0, result.stderr
    import json

    data = json.loads(result.stdout)
    views = {v["view"]: v for v in data["views"]}
    assert views["customer_spend"]["up_to_date"] and views["merchant_risk"]["keys"] == 40
    assert data["online_store"] == REDIS_URL


def test_a_key_that_is_not_unicode_text_is_a_usage_error(tmp_path: Path, redis_prefix: str) -> None:
    project = make_project(tmp_path / "p", {
        "models/tagged.sql": "select 'a' as code, timestamp '2026-01-01' as ts, 1.5 as x",
        "models/schema.yml": "version: 2\nmodels:\n  - name: tagged\n    config:\n      meta:\n"
                             "        feature_store: {entity: code, timestamp: ts, online: true}\n",
    })
    store = FeatureStore(project_dir=str(project))
    store.sync()
    assert store.get_online_features(["tagged:x"], [{"code": "a"}]).values == ((1.5,),)
    with pytest.raises(UsageError, match=r"entity_rows\[1\]\['code'\] is '\\udcff': not valid Unicode"):
        store.get_online_features(["tagged:x"], [{"code": "a"}, {"code": "\udcff"}])


def test_responses_convert_to_pandas_and_polars_with_their_types(duck_project: Path) -> None:
    store = FeatureStore(project_dir=str(duck_project))
    store.sync("merchant_risk")
    refs = ["merchant_risk:merchant_txn_count_30d", "merchant_risk:merchant_category"]
    response = store.get_online_features(refs, [{"merchant_id": 1}, {"merchant_id": 10**9}])
    frame = response.to_pandas()
    assert str(frame["merchant_risk:merchant_txn_count_30d"].dtype) == "Int64"
    assert frame["merchant_risk:merchant_txn_count_30d"].tolist()[0] == response.values[0][0]
    assert frame["merchant_risk:merchant_txn_count_30d"].isna().tolist() == [False, True]
    assert frame["merchant_risk:merchant_category__status"].tolist() == ["present", "not_found"]
    polars_frame = response.to_polars()
    assert polars_frame["merchant_risk:merchant_category"].to_list() == list(response.values[1])
    assert str(polars_frame["merchant_risk:merchant_txn_count_30d"].dtype) == "Int64"
