"""Shared fixtures: real dbt on real copies of the sample project, DuckDB and PostgreSQL.

Every test works on its own copy (or a session-wide built copy it must not change), its own
PostgreSQL schema and its own Redis key prefix, and removes only what it made.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_project"
BIN = Path(sys.executable).parent
DBT = str(BIN / "dbt")
DBT_FEATURES = str(BIN / "dbt-features")
PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"


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


@pytest.fixture(scope="session")
def pg_schema() -> Iterator[str]:
    """A PostgreSQL schema of this test session, dropped at the end (only ours)."""
    with own_pg_schema("dbt_features_test") as schema:
        yield schema


@pytest.fixture(scope="session")
def built_sample(tmp_path_factory: pytest.TempPathFactory, pg_schema: str) -> Path:
    """The sample project copied once per session and built with `dbt run` on DuckDB and on
    PostgreSQL (target `postgres`, schema `pg_schema`). Tests must not modify it: copy it."""
    project = copy_sample(tmp_path_factory.mktemp("sample") / "sample_project")
    os.environ["DBT_FEATURES_SAMPLE_DUCKDB"] = str(project / "target" / "sample.duckdb")
    os.environ["DBT_FEATURES_PG_SCHEMA"] = pg_schema
    run_dbt(project, "run", "--target", "postgres")
    run_dbt(project, "run")  # leaves a DuckDB manifest in target/, the default target
    return project


@pytest.fixture
def sample_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private, unbuilt copy of the sample project whose DuckDB file is its own."""
    project = copy_sample(tmp_path / "sample_project")
    monkeypatch.setenv("DBT_FEATURES_SAMPLE_DUCKDB", str(project / "target" / "sample.duckdb"))
    return project


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


# -- online store (issue 4): recent data, the real Redis under a unique key prefix -------------

REDIS_URL = "redis://127.0.0.1:6379/0"


def recent_copy(dest: Path, n_transactions: int = 6000) -> Path:
    """A sample copy whose data ends today: the default start_date is fixed, so its rows are
    long outside the views' ttl and the online store would rightly serve nothing."""
    import re
    from datetime import date, timedelta

    project = copy_sample(dest)
    config = project / "dbt_project.yml"
    start = (date.today() - timedelta(days=119)).isoformat()
    text = re.sub(r'start_date: "[^"]*"', f'start_date: "{start}"', config.read_text())
    config.write_text(re.sub(r"n_transactions: \d+", f"n_transactions: {n_transactions}", text))
    packages = project / "packages.yml"
    if packages.is_file() and not (project / "dbt_packages").exists():
        packages.write_text(packages.read_text().replace("local: ../", f"local: {REPO}/"))
        run_dbt(project, "deps")
    return project


def online_env(project: Path, schema: str) -> dict[str, str]:
    return {"DBT_FEATURES_SAMPLE_DUCKDB": str(project / "target" / "sample.duckdb"),
            "DBT_FEATURES_PG_SCHEMA": schema}


@pytest.fixture(scope="session")
def online_pg_schema() -> Iterator[str]:
    """The PostgreSQL schema of the online-store tests (dropped at the end: only ours)."""
    with own_pg_schema("dbt_features_online") as schema:
        yield schema


@pytest.fixture(scope="session")
def recent_duckdb(tmp_path_factory: pytest.TempPathFactory, online_pg_schema: str) -> Path:
    """Recent sample data built by `dbt run` on DuckDB. Do not modify: copy it."""
    project = recent_copy(tmp_path_factory.mktemp("online_duck") / "sample_project")
    run_dbt(project, "run", env=online_env(project, online_pg_schema))
    return project


@pytest.fixture(scope="session")
def recent_postgres(tmp_path_factory: pytest.TempPathFactory, online_pg_schema: str) -> Path:
    """Recent sample data built by `dbt run --target postgres` (schema online_pg_schema)."""
    project = recent_copy(tmp_path_factory.mktemp("online_pg") / "sample_project")
    run_dbt(project, "run", "--target", "postgres", env=online_env(project, online_pg_schema))
    return project


@pytest.fixture
def redis_prefix(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """This test's Redis: the real one, under a unique key prefix (set in the environment, as
    the CLI reads it); only keys under that prefix are deleted afterwards, never the whole
    database."""
    import redis

    prefix = f"dbtf_test_{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("DBT_FEATURES_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("DBT_FEATURES_REDIS_PREFIX", prefix)
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=10_000))
    for i in range(0, len(keys), 5000):
        client.unlink(*keys[i : i + 5000])
    client.close()


@pytest.fixture
def duck_project(recent_duckdb: Path, online_pg_schema: str, redis_prefix: str,
                 monkeypatch: pytest.MonkeyPatch) -> Path:
    """The recent DuckDB project, with this process's environment pointing at it."""
    for name, value in online_env(recent_duckdb, online_pg_schema).items():
        monkeypatch.setenv(name, value)
    return recent_duckdb


@pytest.fixture
def pg_project(recent_postgres: Path, online_pg_schema: str, redis_prefix: str,
               monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, value in online_env(recent_postgres, online_pg_schema).items():
        monkeypatch.setenv(name, value)
    return recent_postgres
