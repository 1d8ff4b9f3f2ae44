"""Feast's own `remote` online store client, pointed at `dbt-features serve`, reads the values
`dbt-features get` prints. Feast runs in its own venv (.venv-feast, built by `make test`):
it pins packages past what dbt-core accepts."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import DBT_FEATURES, REPO
from dbt_features.store import FeatureStore
from http_support import Server

FEAST_PYTHON = REPO / ".venv-feast" / "bin" / "python"
CLIENT = Path(__file__).with_name("feast_client.py")


@pytest.mark.skipif(not FEAST_PYTHON.exists(),
                    reason="Feast's client venv is missing: run `make test` (or make .venv-feast/.installed)")
def test_feast_remote_client_reads_what_get_prints(duck_project: Path, tmp_path: Path) -> None:
    FeatureStore(project_dir=str(duck_project)).sync()
    server = Server(duck_project)
    try:
        rows = [{"customer_id": c, "merchant_id": m} for c, m in ((1, 3), (2, 4), (42, 7),
                                                                    (999999, 5))]
        requests = [
            {"features": ["customer_spend:avg_amount_30d", "customer_spend:avg_amount_7d",
                          "customer_spend:txn_count_7d", "merchant_risk:merchant_txn_count_30d",
                          "merchant_risk:merchant_fraud_rate_30d",
                          "merchant_risk:merchant_category"], "entity_rows": rows},
            {"feature_service": "fraud_model", "entity_rows": rows, "full_feature_names": True},
        ]
        done = subprocess.run(
            [str(FEAST_PYTHON), str(CLIENT), server.url, str(tmp_path / "feast_repo"),
             json.dumps(requests)],
            capture_output=True, text=True, timeout=300, cwd=tmp_path,
            env={**os.environ, "FEAST_USAGE": "False"})
        assert done.returncode == 0, done.stderr[-3000:]
        plain, full = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        server.stop()

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
