"""Running the feature server in this process: the listening socket, SIGTERM as a normal exit
(so that clean-up runs), and uvicorn serving ``FeatureServer`` until it is stopped."""

from __future__ import annotations

import functools
import signal
import socket
import sys
import threading

from dbt_features.errors import UsageError

from .http_timeouts import TimedHttpProtocol
from .server import FeatureServer


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before serving so a taken port is a clear error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets only when the proto
    # says TCP; without it Nagle + delayed ACK add 40 ms to every keep-alive response.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port} ({exc.strerror}): pick another "
                         "--port or --host.") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def exit_on_sigterm() -> None:
    """Make SIGTERM end the process normally (exit 0), as Ctrl-C does, so that clean-up runs:
    above all, stopping the embedded Redis when no one else uses it. With the default action
    the process dies at once and leaves that server running. A handler the embedding program
    installed is left alone.

    uvicorn handles SIGTERM itself while serving (a graceful stop), then raises it again with
    the handler it found restored: this one.
    """
    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL):
        signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(0))


def run(app: FeatureServer, sock: socket.socket) -> None:
    """Serve on ``sock`` until interrupted (uvicorn: httptools parser with a deadline on
    reading each request, no access log), then release the online store."""
    import uvicorn

    exit_on_sigterm()
    protocol = functools.partial(TimedHttpProtocol, feature_server=app)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            server_header=False, http=protocol)  # type: ignore[arg-type]
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        app.online.close()
