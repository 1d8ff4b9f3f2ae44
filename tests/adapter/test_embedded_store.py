"""The embedded online store (no URL configured): where it lives (outside dbt's target path,
so `dbt clean` keeps it), that every command stops it promptly at exit without losing what
was synced, that a command leaves it running while `serve` uses it, and that SIGTERM on
`serve` stops it as Ctrl-C does."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from helpers import DBT_FEATURES, online_env, recent_copy, run_dbt
from http_support import Server, call

STORE = Path(".dbt_features") / "online_store"


def alive(pid: int) -> bool:
    """The process exists and has not exited (a zombie waiting to be reaped has exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def server_pids(project: Path) -> list[int]:
    """Every embedded redis-server this project has started (from its log)."""
    log = project / STORE / "redis.log"
    return [int(p) for p in re.findall(r"pid=(\d+), just started", log.read_text())]


def cli(project: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([DBT_FEATURES, *args], cwd=project, capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.fixture(scope="module")
def embedded_project(tmp_path_factory: pytest.TempPathFactory,
                     online_pg_schema: str) -> Iterator[tuple[Path, dict[str, str]]]:
    """A built sample copy whose DuckDB file is outside target/ (so `dbt clean` leaves the
    warehouse alone), with no online store URL: the embedded server."""
    root = tmp_path_factory.mktemp("embedded")
    project = recent_copy(root / "sample_project")
    env = {**os.environ, **online_env(project, online_pg_schema),
           "DBT_FEATURES_SAMPLE_DUCKDB": str(root / "warehouse.duckdb")}
    env.pop("DBT_FEATURES_REDIS_URL", None)
    env.pop("DBT_FEATURES_REDIS_PREFIX", None)
    run_dbt(project, "run", env=env)
    result = cli(project, "sync", env=env)
    assert result.returncode == 0, result.stderr
    yield project, env
    for pid in server_pids(project):  # never leave a failed test's server running
        if alive(pid):
            os.kill(pid, signal.SIGTERM)


def test_store_is_outside_target_says_where_and_survives_dbt_clean(
        embedded_project: tuple[Path, dict[str, str]]) -> None:
    project, env = embedded_project
    store = project / STORE
    assert (store / "dump.rdb").is_file()
    assert not (project / "target" / "online_store").exists()
    run_dbt(project, "clean", env=env)
    assert not (project / "target").exists()
    assert (store / "dump.rdb").is_file()
    run_dbt(project, "deps", env=env)  # dbt clean removed dbt_packages/ too

    # The data synced before survives the server stopping (after sync) and starting again.
    result = cli(project, "get", "customer_spend:txn_count_7d", "--entity", "customer_id=1",
                 env=env)
    assert result.returncode == 0, result.stderr
    assert f"with its data in {store}" in result.stderr  # the one-line notice says where
    assert " present " in result.stdout


def test_a_command_stops_the_server_at_once_when_it_ends(
        embedded_project: tuple[Path, dict[str, str]]) -> None:
    """The part after the answer (releasing the server: SHUTDOWN SAVE) is quick, and the
    server is gone when the command has exited."""
    project, env = embedded_project
    started = len(server_pids(project))
    errors = project.parent / "get.stderr"
    proc = subprocess.Popen(
        [DBT_FEATURES, "get", "customer_spend:txn_count_7d", "--entity", "customer_id=1",
         "--json"], cwd=project, env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE, stderr=errors.open("w"), text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline()  # printed before the server is released
    answered = time.monotonic()
    rest = proc.stdout.read()
    proc.wait(timeout=60)
    exited = time.monotonic()
    assert proc.returncode == 0, errors.read_text()
    data = json.loads(first + rest)
    assert data["results"][0]["statuses"] == ["present"]
    assert exited - answered < 3, f"{exited - answered:.1f} s from the answer to the exit"
    pids = server_pids(project)
    assert len(pids) == started + 1
    assert not alive(pids[-1])
    assert not (project / STORE / "redis.pid").exists()


def test_serve_keeps_the_server_for_itself_and_sigterm_stops_it(
        embedded_project: tuple[Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    project, env = embedded_project
    for name in ("DBT_FEATURES_REDIS_URL", "DBT_FEATURES_REDIS_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    server = Server(project, env=env)
    try:
        status, health, _ = call(f"{server.url}/health")
        assert status == 200 and health["redis"] == "ok", health
        pid = server_pids(project)[-1]
        assert alive(pid)

        # Another command while serve runs: it leaves the server alone.
        result = cli(project, "status", env=env)
        assert result.returncode == 0, result.stderr
        assert alive(pid)
        assert call(f"{server.url}/health")[0] == 200

        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=30) == 0
        deadline = time.monotonic() + 5
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid), "SIGTERM on serve left the embedded redis-server running"
    finally:
        server.stop()

    # What serve used is still there for the next command.
    result = cli(project, "get", "customer_spend:txn_count_7d", "--entity", "customer_id=1",
                 env=env)
    assert result.returncode == 0 and " present " in result.stdout, result.stderr
