"""PostgreSQL values and faults, each one clear message rather than a traceback: a money column, an infinite
timestamp, and the server stopping in the middle of a sync (on a server this test starts)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pytest
from click.testing import CliRunner

from helpers import own_pg_schema, run_dbt
from dbt_features import FeatureStore
from dbt_features.cli import main
from dbt_features.errors import WarehouseError

PG_BIN = Path("/usr/lib/postgresql/15/bin")
LOST = ("lost the connection to PostgreSQL ({reason}): check that the server is running, then "
        "run the command again (nothing was half-written).")


def pg_project(root: Path, schema: str, port: int, files: dict[str, str]) -> Path:
    """A dbt project on PostgreSQL (schema ``schema`` of database test on ``port``), built."""
    root.mkdir(parents=True)
    (root / "dbt_project.yml").write_text(
        "name: pgv\nversion: '1.0'\nconfig-version: 2\nprofile: pgv\n"
        "models:\n  pgv:\n    +materialized: table\n")
    (root / "profiles.yml").write_text(
        "pgv:\n  target: dev\n  outputs:\n    dev:\n      type: postgres\n"
        f"      host: 127.0.0.1\n      port: {port}\n      user: postgres\n      password: ''\n"
        f"      dbname: test\n      schema: {schema}\n      threads: 1\n")
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    run_dbt(root, "run")
    return root


def meta(extra: str = "") -> str:
    return ("{{ config(meta={'feature_store': {'entity': 'customer_id', 'timestamp': 'ts'"
            + extra + "}}) }}\n")


@pytest.fixture(scope="module")
def odd_values(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with own_pg_schema("dbt_features_values") as schema:
        yield pg_project(tmp_path_factory.mktemp("pgv") / "proj", schema, 5432, {
            "models/money.sql": meta() + "select 1::bigint as customer_id, "
                                "timestamp '2026-01-01' as ts, 12.5::money as amount",
            "models/inf.sql": meta(", 'online': true") + "select 1::bigint as customer_id, "
                              "timestamp '2026-01-01' as ts, 'infinity'::timestamp as last_seen",
            "models/labels.sql": "select 1::bigint as customer_id, "
                                 "timestamp '2026-02-01' as scored_at",
        })


def invoke(project: Path, *args: str):
    return CliRunner().invoke(main, [*args, "--project-dir", str(project)])


def test_money_column_is_refused_with_what_to_do(odd_values):
    result = invoke(odd_values, "validate")
    assert result.exit_code == 2
    assert ("  - model money (models/money.sql): feature column 'amount' has type 'money', which "
            "dbt-features cannot serve; cast it to numeric in the model (e.g. "
            "`amount::numeric`).\n") in result.stderr


INFINITE = ("Error: feature view inf (models/inf.sql): PostgreSQL returned 'infinity' in column "
            "'last_seen': Python has no date or timestamp for it (infinite, or outside years "
            "1-9999). Replace it in the model, e.g. `case when isfinite(last_seen) then "
            "last_seen end`, and rebuild it.\n")


@pytest.mark.parametrize("spine", ["file", "labels"])
def test_infinite_timestamp_feature(odd_values, tmp_path, spine):
    if spine == "file":
        path = tmp_path / "spine.csv"
        path.write_text("customer_id,scored_at\n1,2026-02-01 00:00:00\n")
        spine = str(path)
    result = invoke(odd_values, "training-set", "--spine", spine, "--spine-timestamp",
                    "scored_at", "-f", "inf:last_seen", "-o", str(tmp_path / "out.parquet"))
    assert result.exit_code == 1
    assert result.stderr.endswith(INFINITE), result.stderr
    assert "Traceback" not in result.output


def test_infinite_timestamp_in_sync(odd_values, redis_prefix):
    result = invoke(odd_values, "sync", "--select", "inf")
    assert result.exit_code == 1, result.output
    assert ("Error: feature view 'inf' (models/inf.sql): PostgreSQL returned 'infinity' in "
            "column 'last_seen': Python has no date or timestamp for it") in result.stderr
    assert "Traceback" not in result.output


# -- a PostgreSQL server of this test's own, stopped in the middle of a read --------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_postgres(*args: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)


@pytest.fixture
def own_postgres() -> Iterator[tuple[int, Path]]:
    """A new PostgreSQL cluster on a free port (trust auth, database test); stopped by the PID
    of its postmaster afterwards, whatever the test did to it."""
    if not (PG_BIN / "initdb").exists():
        pytest.skip("PostgreSQL 15 server binaries are not installed")
    folder = Path(tempfile.mkdtemp(prefix="dbtf_pg_"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data, port = folder / "data", free_port()
    subprocess.run(as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust",
                               "-U", "postgres"), check=True, capture_output=True)
    subprocess.run(as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-w", "-l",
                               str(folder / "log"), "-o",
                               f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start"),
                   check=True, capture_output=True)
    subprocess.run(as_postgres(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port),
                               "test"), check=True, capture_output=True)
    try:
        yield port, data
    finally:
        pid_file = data / "postmaster.pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGQUIT)
            for _ in range(100):
                if not pid_file.exists():
                    break
                time.sleep(0.1)
        shutil.rmtree(folder, ignore_errors=True)


def stop(data: Path) -> None:
    """Immediate shutdown of our own server, by its postmaster's PID."""
    pid = int((data / "postmaster.pid").read_text().split()[0])
    os.kill(pid, signal.SIGQUIT)
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def test_server_stopped_in_the_middle_of_a_read(own_postgres, tmp_path):
    port, data = own_postgres
    project = pg_project(tmp_path / "proj", "public", port, {
        "models/many.sql": meta(", 'online': true") + "select g::bigint as customer_id, "
                           "now()::timestamp as ts, g * 1.5 as score "
                           "from generate_series(1, 20000) g"})
    store = FeatureStore(str(project))
    with store.warehouse() as wh:
        batches = wh.batches('select * from "public"."many"', batch_size=100)
        assert next(batches).num_rows == 100
        stop(data)
        with pytest.raises(WarehouseError) as caught:
            for _ in batches:
                pass
    message = caught.value.message
    assert message.startswith("lost the connection to PostgreSQL (") and "\n" not in message
    assert message.endswith("check that the server is running, then run the command again "
                            "(nothing was half-written).")


def test_server_stopped_in_the_middle_of_a_sync(own_postgres, tmp_path, redis_prefix):
    port, data = own_postgres
    project = pg_project(tmp_path / "proj", "public", port, {
        "models/many.sql": meta(", 'online': true") + "select g::bigint as customer_id, "
                           "now()::timestamp as ts, g * 1.5 as score "
                           "from generate_series(1, 20000) g"})
    store = FeatureStore(str(project))

    def stop_once(view: str, rows: int) -> None:
        if (data / "postmaster.pid").exists():
            stop(data)

    with pytest.raises(WarehouseError) as caught:
        store.sync(batch_size=500, progress=stop_once)
    assert caught.value.message.startswith("lost the connection to PostgreSQL (")
    assert "\n" not in caught.value.message
