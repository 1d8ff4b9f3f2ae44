"""What the tests share besides fixtures: paths, the real dbt and dbt-features binaries, copies
of the sample project, small dbt projects, and our own PostgreSQL schemas.

Test modules import these (``from helpers import make_project``); the fixtures that use them
live in conftest.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_project"
BIN = Path(sys.executable).parent
DBT = str(BIN / "dbt")
DBT_FEATURES = str(BIN / "dbt-features")
PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
REDIS_URL = "redis://127.0.0.1:6379/0"
# The sample profile's settings that point a run at one copy's DuckDB file and PostgreSQL schema.
SAMPLE_ENV = ("DBT_FEATURES_SAMPLE_DUCKDB", "DBT_FEATURES_PG_SCHEMA")


def copy_sample(dest: Path) -> Path:
    """A fresh copy of the sample project (without its built artifacts)."""
    shutil.copytree(
        SAMPLE, dest, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", "*.duckdb")
    )
    # The sample's packages.yml installs the repo's dbt package (`local: ../dbt_package`):
    # put it where that path points, and installed as `dbt deps` would (no deps run needed).
    package = REPO / "dbt_package"
    if not (dest.parent / "dbt_package").exists():
        shutil.copytree(package, dest.parent / "dbt_package")
    shutil.copytree(package, dest / "dbt_packages" / "dbt_features")
    return dest


def run_dbt(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the real dbt CLI in a subprocess; fail the test with dbt's output if it fails."""
    result = subprocess.run(
        [DBT, *args, "--project-dir", str(project), "--profiles-dir", str(project)],
        cwd=project, env={**os.environ, **(env or {})}, capture_output=True, text=True,
    )
    if result.returncode != 0:
        pytest.fail(f"dbt {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@contextmanager
def own_pg_schema(prefix: str) -> Iterator[str]:
    """A new PostgreSQL schema name; that schema (only ours) is dropped afterwards."""
    import psycopg2

    schema = f"{prefix}_{uuid.uuid4().hex[:8]}"
    try:
        yield schema
    finally:
        con = psycopg2.connect(PG_DSN)
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute(f'drop schema if exists "{schema}" cascade')
        con.close()


def add_prod_target(project: Path) -> None:
    """Give a sample copy a `prod` target: its own DuckDB file (database `prod`), schema
    `analytics` — another environment, as production's artifacts would be."""
    profiles = project / "profiles.yml"
    profiles.write_text(profiles.read_text() + (
        "\n    prod:\n      type: duckdb\n"
        f"      path: \"{project / 'prod.duckdb'}\"\n"
        "      schema: analytics\n      keep_open: false\n      threads: 2\n"))


def make_project(root: Path, files: dict[str, str], *, build: bool = True) -> Path:
    """A minimal dbt project on its own DuckDB file, with the given files (path -> text), built
    with a real `dbt run` unless ``build`` is false."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "dbt_project.yml").write_text(
        "name: tiny\nversion: '1.0'\nconfig-version: 2\nprofile: tiny\n"
        "models:\n  tiny:\n    +materialized: table\n"
    )
    (root / "profiles.yml").write_text(
        "tiny:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        f"      path: '{root / 'tiny.duckdb'}'\n      keep_open: false\n"
    )
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if build:
        run_dbt(root, "run")
    return root


def recent_copy(dest: Path, n_transactions: int = 6000) -> Path:
    """A sample copy whose data ends today: the default start_date is fixed, so its rows are
    long outside the views' ttl and the online store would rightly serve nothing."""
    project = copy_sample(dest)
    config = project / "dbt_project.yml"
    start = (date.today() - timedelta(days=119)).isoformat()
    text = re.sub(r'start_date: "[^"]*"', f'start_date: "{start}"', config.read_text())
    text = re.sub(r"n_transactions: \d+", f"n_transactions: {n_transactions}", text)
    # Data up to today holds yesterday's merchant rows, in effect from midnight: published at
    # once, or from midnight to 1 am a sync would serve rows not yet created, which a replay
    # "as known at" rightly reports.
    config.write_text(re.sub(r"publish_delay_hours: \d+", "publish_delay_hours: 0", text))
    packages = project / "packages.yml"
    if packages.is_file() and not (project / "dbt_packages").exists():
        packages.write_text(packages.read_text().replace("local: ../", f"local: {REPO}/"))
        run_dbt(project, "deps")
    return project


def online_env(project: Path, schema: str) -> dict[str, str]:
    """The sample profile's environment for this copy: its DuckDB file, this PostgreSQL schema."""
    return {"DBT_FEATURES_SAMPLE_DUCKDB": str(project / "target" / "sample.duckdb"),
            "DBT_FEATURES_PG_SCHEMA": schema}
