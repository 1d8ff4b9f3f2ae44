"""Values the online store cannot hold are refused by `sync` with one message naming the view
and column (never a traceback, never a wrong value): integers beyond int64 and timestamps
beyond the years 1 to 9999 (DuckDB's `infinity`)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from helpers import DBT_FEATURES, make_project

SCHEMA = """
version: 2
models:
  - name: odd
    config:
      meta:
        feature_store: {{entity: id, timestamp: ts, online: true}}
"""


@pytest.mark.parametrize(("column", "shown"), [
    ("18446744073709551615::ubigint", "18446744073709551615"),
    ("(2::hugeint ** 70)::hugeint", "1180591620717411303424"),
    ("'infinity'::timestamp", "9223372036854775807"),
])
def test_values_beyond_the_online_types_are_one_clear_error(tmp_path: Path, column: str,
                                                             shown: str, redis_prefix: str) -> None:
    project = make_project(tmp_path / "p", {
        "models/odd.sql": f"select 1::bigint as id, timestamp '2026-01-01' as ts, {column} as big",
        "models/schema.yml": SCHEMA.format(),
    })
    result = subprocess.run([DBT_FEATURES, "sync"], cwd=project, env=dict(os.environ), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"feature view 'odd' (models/odd.sql): column 'big' holds {shown}" in result.stderr
    assert "cast or clamp it in the model" in result.stderr
