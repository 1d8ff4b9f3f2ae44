"""Commands while another process holds the DuckDB file (a `dbt run`, a `sync`): the reading
commands do not open it when the registry is current; the others say in one line that it is
locked, by which process, and what to do. dbt errors never carry dbt's stack traces."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
from click.testing import CliRunner

from helpers import make_project
from dbt_features.cli import main
from dbt_features.project import dbt_failure

SPEND = ("{{ config(meta={'feature_store': {'entity': 'customer_id', 'timestamp': 'ts'}}) }}\n"
         "select 1::bigint as customer_id, timestamp '2026-01-01' as ts, 1.5::double as f1\n")
LOCKED = re.compile(
    r"DuckDB file (?P<path>\S+) is locked by another process \(.+, PID (?P<pid>\d+)\): wait for "
    r"that command \(a `dbt run`, a `dbt-features sync`\?\) to finish, or close the program "
    r"holding the file, then run this again\.\n$")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = make_project(tmp_path / "tiny", {"models/spend.sql": SPEND})
    assert CliRunner().invoke(main, ["list", "--project-dir", str(root)]).exit_code == 0
    return root


def hold(path: Path, *, read_only: bool) -> subprocess.Popen:
    """Another process holding the DuckDB file until killed."""
    code = ("import duckdb, sys, time\n"
            f"con = duckdb.connect({str(path)!r}, read_only={read_only})\n"
            "print('holding', flush=True)\ntime.sleep(120)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "holding"
    return holder


@pytest.fixture
def writer(project: Path) -> Iterator[subprocess.Popen]:
    holder = hold(project / "tiny.duckdb", read_only=False)
    yield holder
    holder.kill()
    holder.wait()


@pytest.fixture
def reader(project: Path) -> Iterator[subprocess.Popen]:
    holder = hold(project / "tiny.duckdb", read_only=True)
    yield holder
    holder.kill()
    holder.wait()


def invoke(project: Path, *args: str):
    return CliRunner().invoke(main, [*args, "--project-dir", str(project)])


def test_reading_commands_do_not_open_the_warehouse(project, writer):
    for args in (("list",), ("describe", "spend:f1"), ("list", "--select", "spend")):
        result = invoke(project, *args)
        assert result.exit_code == 0, (args, result.output)


def test_training_set_on_a_locked_file_says_so(project, writer, tmp_path):
    spine = tmp_path / "spine.csv"
    spine.write_text("customer_id,event_timestamp\n1,2026-02-01 00:00:00\n")
    result = invoke(project, "training-set", "--spine", str(spine), "-f", "spend:f1",
                    "-o", str(tmp_path / "out.parquet"))
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ")
    match = LOCKED.search(result.stderr)
    assert match, result.stderr
    assert int(match["pid"]) == writer.pid
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_dbt_in_process_on_a_locked_file_is_one_line(project, reader):
    """The manifest is stale, so dbt parses and compiles here: it needs the file read-write
    while a sync (a reader) holds it."""
    later = time.time() + 1
    os.utime(project / "models" / "spend.sql", (later, later))
    result = invoke(project, "list")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: `dbt compile --select +fqn:tiny.spend --indirect-selection empty` failed in "
                                    f"{project}: DuckDB file ")
    match = LOCKED.search(result.stderr)
    assert match and int(match["pid"]) == reader.pid, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_get_in_a_subprocess_while_the_file_is_held(tmp_path, redis_prefix):
    """`get` reads Redis and the registry only: another process holding the file changes
    nothing."""
    root = make_project(tmp_path / "online", {"models/spend.sql": SPEND.replace(
        "'timestamp': 'ts'", "'timestamp': 'ts', 'online': true").replace(
        "timestamp '2026-01-01'", "now()::timestamp")})
    assert invoke(root, "sync").exit_code == 0
    holder = hold(root / "tiny.duckdb", read_only=False)
    try:
        done = subprocess.run([str(Path(sys.executable).parent / "dbt-features"), "get",
                               "spend:f1", "--entity", "customer_id=1"],
                              cwd=root, capture_output=True, text=True)
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 0, done.stderr
    assert "1.5" in done.stdout and "present" in done.stdout


def test_dbt_failure_is_one_line_without_stack_traces():
    messages = [
        "Encountered an error:\nCompilation Error in model x (models/x.sql)\n  unexpected '}'",
        "Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: boom",
        "Compilation Error in model x (models/x.sql)\n  unexpected '}'",
    ]
    assert dbt_failure(messages) == "Compilation Error in model x (models/x.sql) unexpected '}'"
