"""What the served-log tests share: requests over the sample project's views, and the check
that a log holds exactly what the responses served."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

from dbt_features.serving.online import OnlineResponse

CUSTOMER_ROWS = [{"customer_id": c} for c in (1, 2, 3, 999_999, 4)]
REQUESTS: list[tuple[list[str], list[dict[str, Any]]]] = [
    (["customer_spend:*"], CUSTOMER_ROWS),
    (["merchant_risk:merchant_category", "customer_spend:avg_amount_30d"],
     [{"customer_id": 1, "merchant_id": 3}, {"customer_id": 5, "merchant_id": 424_242},
      {"customer_id": 888_888, "merchant_id": 7}]),
    (["merchant_risk:*"], [{"merchant_id": m} for m in (3, 4, 5, 6)]),
]


def served_rows(response: OnlineResponse) -> dict[tuple[str, int], dict[str, Any]]:
    """Per (view, entity row): the status, event time and value of each requested feature."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for j, ref in enumerate(response.features):
        view, feature = ref.split(":")
        for i in range(len(response.entity_rows)):
            row = out.setdefault((view, i), {"features": {}})
            row["status"] = response.statuses[j][i].value
            row["event_timestamp"] = response.event_timestamps[j][i]
            row["features"][feature] = response.values[j][i]
    return out


def check_log_equals(tables: dict[str, pa.Table], responses: list[OnlineResponse]) -> None:
    """Every logged row is what a response served, and every response is logged once."""
    by_request: dict[str, list[dict[str, Any]]] = {}
    for view, table in tables.items():
        for row in table.to_pylist():
            by_request.setdefault(row["request_id"], []).append(row | {"view": view})
    assert len(by_request) == len(responses)
    remaining = list(responses)
    for request_id, rows in by_request.items():
        rows.sort(key=lambda r: r["request_time"])
        match = next(r for r in remaining if _same(rows, r))
        remaining.remove(match)
    assert not remaining


def _same(rows: list[dict[str, Any]], response: OnlineResponse) -> bool:
    served = served_rows(response)
    views = {v for v, _ in served}
    n = len(response.entity_rows)
    if {r["view"] for r in rows} != views or len(rows) != n * len(views):
        return False
    per_view: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        per_view.setdefault(row["view"], []).append(row)
    for view, logged in per_view.items():
        for i, row in enumerate(logged):
            want = served[(view, i)]
            key = next(k for k in row if k in response.entity_rows[i])
            if row[key] != response.entity_rows[i][key]:
                return False
            assert row["status"] == want["status"], (row, want)
            assert row["event_timestamp"] == want["event_timestamp"], (row, want)
            assert sorted(row["served_features"]) == sorted(want["features"])
            for feature, value in want["features"].items():
                if isinstance(value, datetime) and row[feature].tzinfo is None:
                    value = value.astimezone(timezone.utc).replace(tzinfo=None)  # as trained
                assert row[feature] == value, (feature, row, want)
                if value is not None:
                    assert type(row[feature]) is type(value)
            assert row["generation"] and row["fingerprint"]
            assert row["request_time"] <= datetime.now(timezone.utc)
    return True
