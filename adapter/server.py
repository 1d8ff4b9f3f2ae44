"""The HTTP feature server: Feast's ``/get-online-features`` over the online store.

A plain ASGI application (served by uvicorn) so that an existing Feast client, including
Feast's ``remote`` online store, can point at it unchanged. The wire format is the one Feast's
Python feature server produces (``feast.feature_server_utils.convert_response_to_dict`` of its
response proto, checked column by column against it in tests): the requested join keys come
first in ``metadata.feature_names`` and ``results`` (their values as sent, status
``PRESENT``, event time the epoch), then each feature with ``values``, ``statuses``
(``PRESENT``, ``NOT_FOUND``, ``OUTSIDE_MAX_AGE``) and RFC 3339 ``event_timestamps`` (the epoch
where nothing was found). Feature names are bare (``avg_amount_30d``) or, with
``full_feature_names``, ``view__feature``; features keep the request's order (Feast's own
server orders the features of a view by a Python set, i.e. arbitrarily); non-finite doubles are
the strings ``NaN``/``Infinity``/``-Infinity``, as Feast sends them.

The registry is loaded once at start; the per-request path is JSON parsing, a cached plan per
feature list, one Redis round trip (``OnlineStore``), the response built a column at a time and
JSON encoding (orjson when installed: ``feast_protocol.encode``). Redis calls run inline on the
event loop (measured faster than a worker thread on this workload: see the README), with a
short socket timeout and a circuit breaker, so a Redis outage answers 503 within about a
second and never queues requests behind a dead server; the next request after the cool-down
tries again, so the server recovers by itself.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import redis

from dbt_features.catalog import Site
from dbt_features.catalog.live import live_status_json
from dbt_features.catalog.site import content_type
from dbt_features.errors import DbtFeaturesError, OnlineStoreError, UsageError
from dbt_features.registry import FeatureRef, Registry

from .feast_protocol import (HTTPError, Plan, check_entities, encode_response, error_body,
                             error_headers, parse_request)
from .http_timeouts import REQUEST_STARTED
from .metrics import CONTENT_TYPE, Metrics, render_consistency
from .replay_report import load_consistency
from .served_stats import trimmed_metrics
from .cluster import REDIS_FAILURES
from .config import OnlineConfig
from .online import OnlineResponse, OnlineStore
from .servable import check_servable

MAX_BODY_BYTES = 1 << 20
MAX_ENTITIES = 10_000
REDIS_TIMEOUT_S = 1.0
"""Socket and connect timeout of the server's Redis client: the bound on a 503's latency."""
BREAKER_COOLDOWN_S = 1.0
"""After Redis failed, answer 503 at once for this long before trying Redis again."""
REQUEST_TIMEOUT_S = 10.0
"""A request (headers and body) must arrive within this many seconds of its first byte, or of
the connection's opening for its first request; else 408 and the connection is closed."""
log = logging.getLogger("uvicorn.error")
"""uvicorn's logger: configured by uvicorn, it reaches the server's stderr."""
_JSON = [(b"content-type", b"application/json")]
CATALOG_STATUS = "/catalog/status.json"
"""The catalog's live online status: each online view's status, as the HTML its pages show."""

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class FeatureServer:
    """The ASGI application. One instance per process; requests run on one event loop."""

    replay_file: Path | None = None
    """The last replay's report (``verify --served``), for its consistency on /metrics."""

    def __init__(self, online: OnlineStore, registry: Registry, *, token: str | None = None,
                 max_body: int = MAX_BODY_BYTES, max_entities: int = MAX_ENTITIES,
                 request_timeout: float = REQUEST_TIMEOUT_S, catalog: Site | None = None) -> None:
        self.online = online
        self.registry = registry
        self.auth = f"Bearer {token}".encode() if token else None
        self.token = token.encode() if token else None
        self.catalog = catalog
        self.max_body = max_body
        self.max_entities = max_entities
        self.request_timeout = request_timeout
        self.metrics = Metrics()
        self._plans: dict[tuple[Any, ...], Plan] = {}
        self._closed_until = 0.0
        self._features_body = json.dumps(_registry_json(registry)).encode()
        self._routes: dict[tuple[str, str], Callable[[bytes], tuple[int, list, bytes]]] = {
            ("POST", "/get-online-features"): self._get_online_features,
            ("GET", "/health"): self._health,
            ("GET", "/features"): lambda _b: (200, _JSON, self._features_body),
            ("GET", "/metrics"): self._metrics,
        }
        if catalog is not None:
            # The feature catalog's pages (read-only): "/" is its index; a browser sends the
            # token as HTTP Basic auth's password, which it asks the person for.
            self._routes |= {("GET", "/"): lambda _b: self._catalog_page("index.html"),
                             ("GET", CATALOG_STATUS): self._catalog_status}
        self._paths = {p for _, p in self._routes}

    # -- ASGI ------------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        path = scope["path"]
        error = None
        try:
            status, out_headers, payload = await self._respond(scope, receive)
        except HTTPError as exc:
            status, out_headers, error = exc.status, error_headers(exc.status), exc.reason
            payload = error_body(exc.status, exc.message)
            if status == 401 and scope["method"] == "GET" and self.catalog is not None:
                out_headers = [*out_headers, (b"www-authenticate",
                                              b'Basic realm="dbt-features catalog: the token"')]
        except DbtFeaturesError as exc:  # any other error of ours: still one JSON message
            status, out_headers, error = 500, _JSON, "internal"
            payload = error_body(500, self.public(exc.message))
        except Exception as exc:  # noqa: BLE001 - a bug still answers JSON and is counted
            status, out_headers, error = 500, _JSON, "internal"
            payload = error_body(500, f"internal error ({type(exc).__name__}) answering {path}; "
                                 "the server's log says more.")
            log.error("%s %s failed: %s: %s", scope["method"], path, type(exc).__name__,
                      self.public(str(exc))[:500])
        self.metrics.observe(self.endpoint(path), status, time.perf_counter() - started, error)
        await send({"type": "http.response.start", "status": status,
                    "headers": [*out_headers, (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})

    @property
    def where(self) -> str:
        """The online store as HTTP clients may see it: no user name, no password."""
        return self.online.config.shown_public

    def public(self, text: str) -> str:
        """A message for an HTTP client: no credentials, no user name."""
        config = self.online.config
        return config.scrub(text).replace(config.shown, config.shown_public)

    def endpoint(self, path: str) -> str:
        """The metrics label of a path: one of ours, else ``other``."""
        if path in self._paths:
            return path
        page = self._catalog_path(path)
        if page is not None and self.catalog is not None and page in self.catalog:
            return "catalog"
        return "other"

    def _catalog_path(self, path: str) -> str | None:
        """The catalog page a GET of ``path`` asks for, if the server has a catalog."""
        if self.catalog is None or not path.startswith("/") or ".." in path:
            return None
        return path[1:]

    async def _respond(self, scope: dict[str, Any], receive: Receive) -> tuple[int, list, bytes]:
        path = scope["path"]
        headers = dict(scope["headers"])
        if self.auth is not None and not self._authorized(headers.get(b"authorization", b""),
                                                          scope["method"]):
            raise HTTPError(401, "unauthorized",
                            "missing or wrong token: send the header 'Authorization: Bearer "
                            "<token>' with the token the server was started with.")
        handler = self._routes.get((scope["method"], path))
        if handler is None:
            allowed = [m for m, p in self._routes if p == path]
            if allowed:
                raise HTTPError(405, "bad_request", f"{path} takes {allowed[0]}, not {scope['method']}.")
            page = self._catalog_path(path) if scope["method"] == "GET" else None
            if page is not None:
                return self._catalog_page(page)
            raise HTTPError(404, "not_found", f"no endpoint {path}: this server has "
                            "POST /get-online-features, GET /health, /features and /metrics"
                            + (", and the feature catalog at /." if self.catalog else "."))
        body = await self._body(scope, receive) if scope["method"] == "POST" else b""
        return handler(body)

    def _authorized(self, header: bytes, method: str) -> bool:
        """The bearer token; or, for a GET (the catalog in a browser), HTTP Basic auth with the
        token as the password (any user name)."""
        assert self.auth is not None and self.token is not None
        if hmac.compare_digest(header, self.auth):
            return True
        if method != "GET" or not header.startswith(b"Basic "):
            return False
        try:
            password = base64.b64decode(header[6:], validate=True).partition(b":")[2]
        except ValueError:
            return False
        return hmac.compare_digest(password, self.token)

    async def _body(self, scope: dict[str, Any], receive: Receive) -> bytes:
        """The request body, which must have arrived ``request_timeout`` seconds after the
        request's first byte (``REQUEST_STARTED``, set by the HTTP protocol)."""
        loop = asyncio.get_running_loop()
        deadline = scope.get(REQUEST_STARTED, loop.time()) + self.request_timeout
        try:
            async with asyncio.timeout_at(deadline):
                return await self._read_body(receive)
        except TimeoutError:
            raise HTTPError(408, "timeout", f"the request did not arrive within "
                            f"{self.request_timeout:g} s: send it whole, at once.") from None

    async def _read_body(self, receive: Receive) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise HTTPError(400, "bad_request", "the client closed the connection before "
                                "the whole body arrived.")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size <= self.max_body:
                chunks.append(chunk)
            # An oversized body is read to its end (up to 16 times the limit) and dropped, so
            # the client reads our 413 instead of a broken pipe.
            if not message.get("more_body") or size > 16 * self.max_body:
                break
        if size > self.max_body:
            raise HTTPError(413, "too_large", f"request body of {size:,} bytes is over the "
                            f"limit of {self.max_body:,} bytes: send fewer entities per request.")
        return b"".join(chunks)

    # -- endpoints -------------------------------------------------------------------------

    def _get_online_features(self, body: bytes) -> tuple[int, list, bytes]:
        request = parse_request(body)
        plan = self._plan(request)
        entities = request["entities"]
        n = check_entities(entities, plan, self.max_entities)
        key_names = [k for k in dict.fromkeys(name for name, *_ in plan.keys)]
        columns = [entities[k] for k in key_names]
        rows = [dict(zip(key_names, values)) for values in zip(*columns)]
        response = self._read(plan, rows)
        self.metrics.entities += n
        # Feast puts every join key it recognises first, in the request's order.
        shown = [k for k in entities if k in key_names]
        return 200, _JSON, encode_response(plan, shown, entities, n, response)

    def _read(self, plan: Plan, rows: list[dict[str, Any]]) -> OnlineResponse:
        if time.monotonic() < self._closed_until:
            raise HTTPError(503, "unavailable", f"the online store ({self.where}) is "
                            "unreachable; retry shortly (it is retried every "
                            f"{BREAKER_COOLDOWN_S:g} s).")
        try:
            return self.online.get_online_features(plan.refs, rows)
        except UsageError as exc:
            raise HTTPError(422, "unprocessable", self.public(exc.message)) from exc
        except OnlineStoreError as exc:
            if isinstance(exc.__cause__, (redis.ConnectionError, redis.TimeoutError, OSError)):
                self._closed_until = time.monotonic() + BREAKER_COOLDOWN_S
            raise HTTPError(503, "unavailable", self.public(exc.message)) from exc

    def _health(self, _body: bytes) -> tuple[int, list, bytes]:
        up, problem = self._redis_up()
        data = {"status": "ok" if up else "unavailable", "online_store": self.where,
                "redis": "ok" if up else problem, "registry": {
                    "project": self.registry.project, "views": len(self.registry.views),
                    "generated_at": self.registry.generated_at}}
        return (200 if up else 503), _JSON, json.dumps(data).encode()

    def _catalog_page(self, page: str) -> tuple[int, list, bytes]:
        assert self.catalog is not None
        body = self.catalog.render(page)
        if body is None:
            raise HTTPError(404, "not_found", f"no page /{page} in the feature catalog: start "
                            "at /.")
        return 200, [(b"content-type", content_type(page).encode())], body

    def _catalog_status(self, _body: bytes) -> tuple[int, list, bytes]:
        """Each online view's live status as its catalog pages show it; 503 without Redis."""
        up, problem = self._redis_up()
        if not up:
            raise HTTPError(503, "unavailable", f"the online store ({self.where}) is "
                            f"unreachable: {problem}")
        try:
            found = self.online.status()
        except OnlineStoreError as exc:
            raise HTTPError(503, "unavailable", self.public(exc.message)) from exc
        data = live_status_json(self.registry, [s.to_dict() for s in found]).decode()
        return 200, _JSON, self.public(data).encode()  # warnings may name the server

    def _metrics(self, _body: bytes) -> tuple[int, list, bytes]:
        ages: dict[str, float | None] = {}
        up, _problem = self._redis_up()
        if up:
            try:
                now = time.time()
                for state in self.online.status():
                    ages[state.view] = _age(state.last_sync, now)
            except OnlineStoreError:
                up = False
        text = self.metrics.render(ages, up)
        if self.online.served_log is not None:
            text += self.online.served_log.counts().metrics_text() + trimmed_metrics(self.online)
        text += render_consistency(load_consistency(self.replay_file).ratios)
        return 200, [(b"content-type", CONTENT_TYPE.encode())], text.encode()

    def _redis_up(self) -> tuple[bool, str]:
        if time.monotonic() < self._closed_until:
            return False, "unreachable (recent failure; retrying shortly)"
        try:
            self.online.client.ping()
            return True, ""
        except REDIS_FAILURES as exc:
            self._closed_until = time.monotonic() + BREAKER_COOLDOWN_S
            return False, self.public(f"{type(exc).__name__}: {exc}")

    # -- planning --------------------------------------------------------------------------

    def _plan(self, request: dict[str, Any]) -> Plan:
        full = request.get("full_feature_names", False)
        service = request.get("feature_service")
        features = request.get("features")
        cache_key = (service, tuple(features) if features else None, full)
        plan = self._plans.get(cache_key)
        if plan is None:
            plan = self._build_plan(features, service, full)
            if len(self._plans) >= 1024:
                self._plans.clear()
            self._plans[cache_key] = plan
        return plan

    def _build_plan(self, features: list[str] | None, service: str | None, full: bool) -> Plan:
        if service is not None:
            try:
                refs = [f"{v}:*" for v in self.registry.service(service).views]
            except UsageError as exc:
                raise HTTPError(404, "not_found", exc.message) from exc
        else:
            assert features is not None
            try:
                refs = [str(FeatureRef.parse(f)) for f in features]
            except UsageError as exc:
                raise HTTPError(400, "bad_request", exc.message) from exc
        try:
            resolved = self.registry.resolve(refs)
        except UsageError as exc:
            raise HTTPError(404, "not_found", exc.message) from exc
        names, keys, seen = [], {}, {}
        for view, feature in resolved:
            try:
                check_servable(view)
            except DbtFeaturesError as exc:
                raise HTTPError(400, "bad_request", exc.message) from exc
            name = f"{view.name}__{feature.name}" if full else feature.name
            if name in seen:
                raise HTTPError(400, "bad_request", f"feature name {feature.name!r} comes from "
                                f"both {seen[name]} and {view.name}; set "
                                "\"full_feature_names\": true to name them view__feature.")
            seen[name] = view.name
            names.append(name)
            for key in view.entity.join_keys:
                keys.setdefault(key.name, (key.name, key.dtype, view.name, view.entity.name))
        return Plan(tuple(f"{v.name}:{f.name}" for v, f in resolved), tuple(names),
                     tuple(keys.values()))


def _age(last_sync: str | None, now: float) -> float | None:
    if not last_sync:
        return None
    from datetime import datetime

    return max(0.0, now - datetime.fromisoformat(last_sync).timestamp())


def _registry_json(registry: Registry) -> dict[str, Any]:
    from dbt_features.summary import view_summary

    return {
        "project": registry.project,
        "target": registry.target,
        "generated_at": registry.generated_at,
        "views": [view_summary(v) for v in registry.views],
        "feature_services": [{"name": s.name, "views": list(s.views), "owner": s.owner,
                              "description": s.description} for s in registry.services],
    }


# -- running -------------------------------------------------------------------------------


def open_server(registry: Registry, config: OnlineConfig, *, token: str | None = None,
                request_timeout: float = REQUEST_TIMEOUT_S,
                catalog: Site | None = None) -> FeatureServer:
    """A ``FeatureServer`` for ``registry``, its online store opened with a client whose
    timeouts bound every request (not the CLI's long sync timeouts); ``catalog``, the feature
    catalog it serves at ``/``."""
    from .config import connect

    client, embedded = connect(config, timeout=REDIS_TIMEOUT_S)
    online = OnlineStore(registry, config, client, embedded)
    return FeatureServer(online, registry, token=token, request_timeout=request_timeout,
                         catalog=catalog)
