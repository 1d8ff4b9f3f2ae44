"""Feast's own `remote` online store client, pointed at `dbt-features serve`, reads the values
`dbt-features get` prints. Feast runs in its own venv (.venv-feast, built by `make test`):
it pins packages past what dbt-core accepts."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from helpers import DBT_FEATURES, REPO
from dbt_features.store import FeatureStore
from http_support import Server, call

FEAST_PYTHON = REPO / ".venv-feast" / "bin" / "python"
CLIENT = Path(__file__).with_name("feast_client.py")
FEATURES = ["customer_spend:avg_amount_30d", "customer_spend:avg_amount_7d",
            "customer_spend:txn_count_7d", "merchant_risk:merchant_txn_count_30d",
            "merchant_risk:merchant_fraud_rate_30d", "merchant_risk:merchant_category"]


@pytest.mark.skipif(not FEAST_PYTHON.exists(),
                    reason="Feast's client venv is missing: run `make test` (or make .venv-feast/.installed)")
def test_feast_remote_client_reads_what_get_prints(duck_project: Path, tmp_path: Path) -> None:
    FeatureStore(project_dir=str(duck_project)).sync()
    server = Server(duck_project)
    try:
        rows = [{"customer_id": c, "merchant_id": m} for c, m in ((1, 3), (2, 4), (42, 7),
                                                                    (999999, 5))]
        requests = [
            {"features": FEATURES, "entity_rows": rows},
            {"feature_service": "fraud_model", "entity_rows": rows, "full_feature_names": True},
        ]
        # Our raw JSON for requests Feast's own server can answer too (distinct, served
        # entities: Feast's Python server never reports OUTSIDE_MAX_AGE).
        golden_requests = [
            {"features": FEATURES, "entities": {"customer_id": [1, 2, 42, 999999],
                                                "merchant_id": [3, 4, 7, 5]}},
            {"features": FEATURES, "entities": {"merchant_id": [8], "customer_id": [9]}},
        ]
        golden = []
        for request in golden_requests:
            status, response, _ = call(f"{server.url}/get-online-features", request)
            assert status == 200, response
            golden.append({"request": request, "response": response})
        done = subprocess.run(
            [str(FEAST_PYTHON), str(CLIENT), server.url, str(tmp_path / "feast_repo"),
             json.dumps(requests), json.dumps(golden)],
            capture_output=True, text=True, timeout=300, cwd=tmp_path,
            env={**os.environ, "FEAST_USAGE": "False"})
        assert done.returncode == 0, done.stderr[-3000:]
        lines = done.stdout.strip().splitlines()
        plain, full = json.loads(lines[-2])
        reference = json.loads(lines[-1])
    finally:
        server.stop()

    # Field for field what Feast's own feature server sends for the same values. Feast orders
    # the features of one view by a Python set (hash order, different in every process); ours
    # keep the request's order, one of Feast's possible orders: compare columns by name.
    for case, feast_json in zip(golden, reference):
        assert set(case["response"]) == set(feast_json) == {"metadata", "results"}
        ours = dict(zip(case["response"]["metadata"]["feature_names"], case["response"]["results"]))
        theirs = dict(zip(feast_json["metadata"]["feature_names"], feast_json["results"]))
        keys = list(case["request"]["entities"])
        assert list(ours)[:2] == list(theirs)[:2] == keys  # join keys first, as sent
        assert set(ours) == set(theirs)
        for name, column in ours.items():
            assert column == theirs[name], name
            assert json.dumps(column) == json.dumps(theirs[name]), name  # 1 is not 1.0
        assert any(s == "NOT_FOUND" for c in ours.values() for s in c["statuses"]) or len(
            ours["customer_id"]["values"]) == 1

    args = ["customer_spend", "merchant_risk", "--json"]
    for row in rows:
        args += ["--entity", f"customer_id={row['customer_id']},merchant_id={row['merchant_id']}"]
    got = subprocess.run([DBT_FEATURES, "get", *args], cwd=duck_project, capture_output=True,
                         text=True, timeout=120, env=dict(os.environ))
    assert got.returncode == 0, got.stderr
    printed = json.loads(got.stdout)
    expected = {ref: result["values"] for ref, result in
                zip(printed["metadata"]["feature_names"], printed["results"])}
    assert any(v is not None for v in expected["customer_spend:avg_amount_30d"])
    assert expected["customer_spend:avg_amount_30d"][-1] is None  # an unknown customer

    assert plain["customer_id"] == [r["customer_id"] for r in rows]
    for ref, values in expected.items():
        view, feature = ref.split(":")
        assert plain[feature] == values, ref
        assert full[f"{view}__{feature}"] == values, ref
        assert [type(v) for v in plain[feature]] == [type(v) for v in values], ref
