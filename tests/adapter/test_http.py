"""The HTTP feature server against the real Redis: Feast's wire format, errors, token, outage."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from helpers import DBT_FEATURES
from dbt_features.store import FeatureStore
from http_support import PrivateRedis, Server, call

FEAST_TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6})?Z$")
EPOCH = "1970-01-01T00:00:00Z"


@pytest.fixture
def served(duck_project: Path) -> Iterator[tuple[Server, FeatureStore]]:
    store = FeatureStore(project_dir=str(duck_project))
    store.sync()
    server = Server(duck_project)
    yield server, store
    server.stop()


def test_feast_response_shape_and_the_values_get_reads(served: tuple[Server, FeatureStore]) -> None:
    server, store = served
    refs = ["customer_spend:avg_amount_30d", "customer_spend:txn_count_7d",
            "merchant_risk:merchant_category"]
    status, data, _ = call(f"{server.url}/get-online-features", {
        "features": refs, "entities": {"customer_id": [1, 2, 999999], "merchant_id": [3, 4, 5]}})
    assert status == 200, data
    assert data["metadata"]["feature_names"] == [
        "customer_id", "merchant_id", "avg_amount_30d", "txn_count_7d", "merchant_category"]
    assert set(data) == {"metadata", "results"}
    assert all(set(r) == {"values", "statuses", "event_timestamps"} for r in data["results"])
    keys = data["results"][0]
    assert keys == {"values": [1, 2, 999999], "statuses": ["PRESENT"] * 3,
                    "event_timestamps": [EPOCH] * 3}
    expected = store.get_online_features(refs, [
        {"customer_id": 1, "merchant_id": 3}, {"customer_id": 2, "merchant_id": 4},
        {"customer_id": 999999, "merchant_id": 5}])
    for j, result in enumerate(data["results"][2:]):
        assert result["values"] == list(expected.values[j])
        assert [type(v) for v in result["values"][:2]] == [type(v) for v in expected.values[j][:2]]
        assert result["statuses"] == [s.feast for s in expected.statuses[j]]
        for stamp, want in zip(result["event_timestamps"], expected.event_timestamps[j]):
            assert FEAST_TS.match(stamp)
            assert stamp == (EPOCH if want is None else
                             want.strftime("%Y-%m-%dT%H:%M:%S") + (
                                 f".{want.microsecond:06d}" if want.microsecond else "") + "Z")
    assert data["results"][2]["statuses"][2] == "NOT_FOUND"
    assert data["results"][2]["values"][2] is None

    # A feature service (the exposure) and full feature names.
    status, data, _ = call(f"{server.url}/get-online-features", {
        "feature_service": "fraud_model", "full_feature_names": True,
        "entities": {"merchant_id": [3], "customer_id": [1]}})
    assert status == 200, data
    names = data["metadata"]["feature_names"]
    assert names[:2] == ["merchant_id", "customer_id"]  # the request's order, as Feast
    assert "customer_spend__avg_amount_30d" in names and "merchant_risk__merchant_category" in names


def test_health_features_and_metrics(served: tuple[Server, FeatureStore]) -> None:
    server, _store = served
    status, health, _ = call(f"{server.url}/health")
    assert status == 200 and health["status"] == "ok" and health["registry"]["views"] == 2
    status, features, _ = call(f"{server.url}/features")
    assert status == 200
    assert [v["name"] for v in features["views"]] == ["customer_spend", "merchant_risk"]
    assert features["feature_services"][0]["name"] == "fraud_model"
    call(f"{server.url}/get-online-features", {"features": ["customer_spend:*"],
                                               "entities": {"customer_id": [1]}})
    call(f"{server.url}/get-online-features", {"features": ["nope:x"], "entities": {"a": [1]}})
    status, text, _ = call(f"{server.url}/metrics")
    assert status == 200
    assert 'dbt_features_http_requests_total{endpoint="/get-online-features",code="200"} 1' in text
    assert 'dbt_features_http_errors_total{endpoint="/get-online-features",reason="not_found"} 1' in text
    assert 'dbt_features_http_request_duration_seconds_bucket{endpoint="/get-online-features",le="+Inf"} 2' in text
    ages = dict(re.findall(r'dbt_features_online_last_sync_age_seconds\{view="(\w+)"\} ([\d.]+)', text))
    assert set(ages) == {"customer_spend", "merchant_risk"} and all(float(a) < 600 for a in ages.values())
    assert "dbt_features_redis_up 1" in text


BAD_REQUESTS = [
    (b"{not json", 400, "request body is not JSON"),
    (b"[1, 2]", 400, "must be a JSON object"),
    ({"entities": {"customer_id": [1]}}, 400, 'exactly one of "features"'),
    ({"features": "customer_spend:avg_amount_30d", "entities": {"customer_id": [1]}}, 400,
     "non-empty list of strings"),
    ({"features": ["customer_spend"], "entities": {"customer_id": [1]}}, 400,
     "not of the form view:feature"),
    ({"features": ["customer_spnd:avg_amount_30d"], "entities": {"customer_id": [1]}}, 404,
     "did you mean 'customer_spend'"),
    ({"features": ["customer_spend:avg_amount_31d"], "entities": {"customer_id": [1]}}, 404,
     "has no feature 'avg_amount_31d'"),
    ({"feature_service": "fraud_modl", "entities": {"customer_id": [1]}}, 404, "fraud_model"),
    ({"features": ["customer_spend:*"], "entities": {"customer_id": ["42"]}}, 422,
     'entities.customer_id[0] is "42"; customer_id (entity customer) is int64: send integers'),
    ({"features": ["customer_spend:*"], "entities": {"customer_id": [1, 2.5]}}, 422,
     "entities.customer_id[1] is 2.5"),
    ({"features": ["customer_spend:*"], "entities": {"customer_id": [True]}}, 422,
     "entities.customer_id[0] is true"),
    ({"features": ["merchant_risk:*"], "entities": {"customer_id": [1]}}, 422,
     "\"entities\" has no 'merchant_id', the join key of feature view 'merchant_risk'"),
    ({"features": ["customer_spend:*"], "entities": {"customer_id": [1], "merchant_id": [1, 2]}},
     400, "same length"),
    ({"features": ["customer_spend:*"], "entities": {"customer_id": []}}, 400, "no rows"),
    ({"features": ["customer_spend:*"], "entities": {"customer_id": list(range(10_001))}}, 413,
     "over the limit of 10,000"),
    (b'{"features": ["customer_spend:*"], "entities": {"customer_id": [' + b"1," * 600_000
     + b"1]}}", 413, "over the limit of 1,048,576 bytes"),
]


def test_bad_requests_get_a_4xx_saying_what_is_wrong(served: tuple[Server, FeatureStore]) -> None:
    server, _store = served
    for body, status, message in BAD_REQUESTS:
        raw = body if isinstance(body, bytes) else None
        got, data, _ = call(f"{server.url}/get-online-features", None if raw else body, raw=raw,
                            method="POST")
        assert got == status, (body if raw is None else raw[:60], data)
        assert message in data["error"] and data["status"] == status, data
    # The server is still fine after all that.
    ok = {"features": ["customer_spend:*"], "entities": {"customer_id": [1]}}
    assert call(f"{server.url}/get-online-features", ok)[0] == 200


def test_wrong_method_and_path(served: tuple[Server, FeatureStore]) -> None:
    server, _store = served
    status, data, _ = call(f"{server.url}/get-online-features")
    assert status == 405 and "takes POST" in data["error"]
    status, data, _ = call(f"{server.url}/get-features", {})
    assert status == 404 and "POST /get-online-features" in data["error"]


def test_token_is_required_when_configured(duck_project: Path) -> None:
    FeatureStore(project_dir=str(duck_project)).sync()
    server = Server(duck_project, "--token-env", "FEATURES_TOKEN", env={"FEATURES_TOKEN": "s3cret"})
    try:
        body = {"features": ["customer_spend:avg_amount_30d"], "entities": {"customer_id": [1]}}
        for token in (None, "wrong"):
            status, data, _ = call(f"{server.url}/get-online-features", body, token=token)
            assert status == 401 and "Authorization: Bearer" in data["error"]
        assert call(f"{server.url}/metrics")[0] == 401
        status, data, _ = call(f"{server.url}/get-online-features", body, token="s3cret")
        assert status == 200, data
    finally:
        server.stop()
    missing = subprocess.run([DBT_FEATURES, "serve", "--token-env", "NOT_SET_ANYWHERE"],
                             cwd=duck_project, capture_output=True, text=True, timeout=60,
                             env={k: v for k, v in os.environ.items() if k != "NOT_SET_ANYWHERE"})
    assert missing.returncode == 2
    assert "NOT_SET_ANYWHERE is not set or empty" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_a_taken_port_is_a_clear_error(served: tuple[Server, FeatureStore],
                                       duck_project: Path) -> None:
    server, _store = served
    taken = subprocess.run([DBT_FEATURES, "serve", "--port", str(server.port)], cwd=duck_project,
                           capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert taken.returncode == 2 and f"cannot listen on 127.0.0.1:{server.port}" in taken.stderr


def test_redis_down_is_a_fast_503_and_the_server_recovers(
        duck_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Against a redis-server of our own (the shared one is never stopped)."""
    own = PrivateRedis(tmp_path)
    monkeypatch.setenv("DBT_FEATURES_REDIS_URL", own.url)
    server = None
    try:
        FeatureStore(project_dir=str(duck_project)).sync()
        server = Server(duck_project)
        url = f"{server.url}/get-online-features"
        body = {"features": ["customer_spend:avg_amount_30d"], "entities": {"customer_id": [1]}}
        status, before, _ = call(url, body)
        assert status == 200

        own.stop()  # stopped: connections refused
        for _ in range(3):
            status, data, seconds = call(url, body)
            assert status == 503 and seconds < 2.5, (status, data, seconds)
            assert "online store" in data["error"] or "Redis" in data["error"]
        assert call(f"{server.url}/health")[0] == 503
        own.start()
        assert _eventually_200(url, body) == before

        own.freeze()  # hung: connections accepted, never answered
        try:
            for _ in range(3):
                status, data, seconds = call(url, body)
                assert status == 503 and seconds < 2.5, (status, data, seconds)
        finally:
            own.thaw()
        assert _eventually_200(url, body) == before
    finally:
        if server is not None:
            server.stop()
        own.stop()


def _eventually_200(url: str, body: dict) -> dict:
    deadline = time.monotonic() + 10
    while True:
        status, data, _ = call(url, body)
        if status == 200 or time.monotonic() > deadline:
            assert status == 200, data
            return data
        time.sleep(0.2)


def test_event_times_are_protobuf_json_timestamps() -> None:
    """Pure: what Feast's server sends (0, 3 or 6 fraction digits, Z)."""
    from dbt_features.serving.feast_protocol import feast_timestamp

    base = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
    assert feast_timestamp(base) == "2026-01-01T00:00:00Z"
    assert feast_timestamp(base + 123_000) == "2026-01-01T00:00:00.123Z"
    assert feast_timestamp(base + 123_456) == "2026-01-01T00:00:00.123456Z"
    assert feast_timestamp(base + 1) == "2026-01-01T00:00:00.000001Z"
    assert feast_timestamp(0) == EPOCH
