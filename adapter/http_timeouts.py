"""The HTTP connection protocol of the feature server: uvicorn's httptools protocol with a
deadline on reading each request, and JSON for the errors it answers itself.

uvicorn closes idle keep-alive connections, but it has no timeout for reading a request: a
client sending one byte every few seconds holds a connection for as long as it likes. Here a
timer is armed when a connection opens and when each later request on it begins; if the
request's headers are not complete when it fires, the client gets a JSON 408 (counted in
/metrics) and the connection is closed. The body must arrive by the same deadline: the
application enforces that part (``FeatureServer._body``) from the start time recorded here in
the request's scope under ``REQUEST_STARTED``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .feast_protocol import raw_error_response

if TYPE_CHECKING:
    from .server import FeatureServer

REQUEST_STARTED = "dbt_features.request_started"
"""Scope key: the event-loop time at which the request's first byte arrived (or, for a
connection's first request, at which the connection opened)."""


class TimedHttpProtocol(HttpToolsProtocol):
    """One per connection (uvicorn's ``http`` protocol class)."""

    def __init__(self, *args: Any, feature_server: "FeatureServer", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.feature_server = feature_server
        self._timer: asyncio.TimerHandle | None = None
        self._started = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._timer is None:  # a later request on a kept-alive connection
            self._arm()
        self.scope[REQUEST_STARTED] = self._started  # type: ignore[literal-required]

    def on_headers_complete(self) -> None:
        self._disarm()  # from here the application holds the deadline
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        """A request that is not valid HTTP (uvicorn answers plain text): JSON, counted."""
        self._disarm()
        self._count(400, "bad_request")
        self._answer(400, "the request is not valid HTTP/1.1: check the request line and "
                     "headers.")

    # -- the deadline ----------------------------------------------------------------------

    def _arm(self) -> None:
        self._started = self.loop.time()
        timeout = self.feature_server.request_timeout
        self._timer = self.loop.call_later(timeout, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        self._count(408, "timeout")
        if self.cycle is not None and not self.cycle.response_complete:
            # Still answering the previous (pipelined) request: close once that is sent.
            self.cycle.keep_alive = False
            self.flow.pause_reading()
            return
        timeout = self.feature_server.request_timeout
        self._answer(408, f"the request's headers did not arrive within {timeout:g} s: send "
                     "the request whole, at once.")

    def _count(self, status: int, reason: str) -> None:
        url = getattr(self, "url", None) or b""
        path = url.split(b"?", 1)[0].decode("latin-1")
        app = self.feature_server
        app.metrics.observe(app.endpoint(path), status, self.loop.time() - self._started, reason)

    def _answer(self, status: int, message: str) -> None:
        self.transport.write(raw_error_response(status, message))
        self.transport.close()
