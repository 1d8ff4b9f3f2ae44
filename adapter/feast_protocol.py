"""Feast's online-serving wire format: the request checked, the response encoded.

What Feast's Python feature server accepts on ``POST /get-online-features`` and what it sends
back (``feast.feature_server_utils.convert_response_to_dict`` of its response proto), so that
Feast clients work unchanged. Kept apart from the HTTP server: pure functions of the request,
the plan and an ``OnlineResponse``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from dbt_features.registry import is_unicode

from .online import OnlineResponse, Status

EPOCH = "1970-01-01T00:00:00Z"
"""The event time Feast sends for join keys and for values not found."""
_FEAST_STATUS = {s: s.feast for s in Status}
_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
"""Non-finite doubles as protobuf's JSON mapping spells them (what Feast's server sends)."""


class HTTPError(Exception):
    """An error answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


def error_body(status: int, message: str) -> bytes:
    """Every error's body: ``{"error": message, "status": status}``."""
    return json.dumps({"error": message, "status": status}).encode()


def error_headers(status: int) -> list[tuple[bytes, bytes]]:
    """JSON; and for a 408 the connection is closed (the rest of the request may never come)."""
    headers = [(b"content-type", b"application/json")]
    if status == 408:
        headers.append((b"connection", b"close"))
    return headers


def raw_error_response(status: int, message: str) -> bytes:
    """A whole HTTP/1.1 error response that closes the connection, for errors answered
    before a request reaches the application."""
    body = error_body(status, message)
    head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
    return head.encode() + body


@dataclass(frozen=True)
class Plan:
    """A feature list resolved once: what to read, what to call it, which keys it needs."""

    refs: tuple[str, ...]
    """``view:feature`` for ``OnlineStore``, in response order."""
    names: tuple[str, ...]
    """The response's feature names (bare, or ``view__feature``)."""
    keys: tuple[tuple[str, str, str, str], ...]
    """Join keys needed: (name, logical type, view, entity)."""


def parse_request(body: bytes) -> dict[str, Any]:
    """The request, with its shape checked (types of entity values are checked later)."""
    try:
        request = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPError(400, "bad_request", f"request body is not JSON ({exc}); send e.g. "
                        '{"features": ["customer_spend:avg_amount_30d"], '
                        '"entities": {"customer_id": [1, 2]}}.') from exc
    except RecursionError as exc:
        raise HTTPError(400, "bad_request", "request body is nested too deeply to be a "
                        "feature request: send an object of \"features\" and \"entities\" "
                        "lists.") from exc
    if not isinstance(request, dict):
        raise HTTPError(400, "bad_request", "request body must be a JSON object with "
                        "\"features\" (or \"feature_service\") and \"entities\".")
    features, service = request.get("features"), request.get("feature_service")
    if (features is None) == (service is None):
        raise HTTPError(400, "bad_request", "give exactly one of \"features\" (a list of "
                        "\"view:feature\") and \"feature_service\" (the name of an ml exposure).")
    if features is not None and (not isinstance(features, list) or not features
                                 or not all(isinstance(f, str) for f in features)):
        raise HTTPError(400, "bad_request", "\"features\" must be a non-empty list of strings "
                        "like \"customer_spend:avg_amount_30d\".")
    if service is not None and not isinstance(service, str):
        raise HTTPError(400, "bad_request", "\"feature_service\" must be a string.")
    entities = request.get("entities")
    if not isinstance(entities, dict) or not entities or not all(
            isinstance(v, list) for v in entities.values()):
        raise HTTPError(400, "bad_request", "\"entities\" must be an object of join key -> list "
                        "of values, e.g. {\"customer_id\": [1, 2]}.")
    if not isinstance(request.get("full_feature_names", False), bool):
        raise HTTPError(400, "bad_request", "\"full_feature_names\" must be true or false.")
    return request


def check_entities(entities: dict[str, list[Any]], plan: Plan, limit: int) -> int:
    lengths = {len(v) for v in entities.values()}
    if len(lengths) != 1:
        sizes = ", ".join(f"{k}: {len(v)}" for k, v in entities.items())
        raise HTTPError(400, "bad_request", f"every list in \"entities\" must have the same "
                        f"length (one value per entity row); got {sizes}.")
    n = lengths.pop()
    if n == 0:
        raise HTTPError(400, "bad_request", "\"entities\" holds no rows: send at least one value.")
    if n > limit:
        raise HTTPError(413, "too_large", f"{n:,} entity rows is over the limit of {limit:,} "
                        "per request: split the request.")
    for name, dtype, view, entity in plan.keys:
        column = entities.get(name)
        if column is None:
            raise HTTPError(422, "unprocessable", f"\"entities\" has no {name!r}, the join key of "
                            f"feature view {view!r} (entity {entity}); it has: "
                            f"{', '.join(entities)}.")
        want = int if dtype == "int64" else str
        for i, value in enumerate(column):
            if type(value) is not want:
                kind = "integers" if want is int else "strings"
                raise HTTPError(422, "unprocessable", f"entities.{name}[{i}] is "
                                f"{_shown(value)}; {name} (entity {entity}) is {dtype}: "
                                f"send {kind}.")
            if want is str and not value.isascii() and not is_unicode(value):
                raise HTTPError(422, "unprocessable", f"entities.{name}[{i}] is "
                                f"{json.dumps(value)}, which holds a lone UTF-16 surrogate: "
                                "send keys as valid Unicode text.")
    return n


def _shown(value: Any) -> str:
    """A JSON value for a message, cut short (a nested value may be huge)."""
    try:
        text = json.dumps(value)
    except (ValueError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= 80 else text[:77] + "..."


def feast_response(plan: Plan, shown: list[str], entities: dict[str, list[Any]], n: int,
                    response: OnlineResponse) -> dict[str, Any]:
    results: list[dict[str, Any]] = [
        {"values": entities[k], "statuses": ["PRESENT"] * n, "event_timestamps": [EPOCH] * n}
        for k in shown
    ]
    stamps: dict[int, str] = {}
    for j in range(len(plan.refs)):
        values = response.values[j]
        dtype = response.dtypes[j]
        if dtype in ("timestamp", "date"):
            values = tuple(v.isoformat() if v is not None else None for v in values)
        elif dtype == "double" and not all(v is None or math.isfinite(v) for v in values):
            values = tuple(_FINITE.get(repr(v), v) for v in values)  # as Feast: valid JSON
        results.append({
            "values": list(values),
            "statuses": [_FEAST_STATUS[s] for s in response.statuses[j]],
            "event_timestamps": [EPOCH if us is None else stamps.get(us) or
                                 stamps.setdefault(us, feast_timestamp(us))
                                 for us in response.event_us[j]],
        })
    return {"metadata": {"feature_names": [*shown, *plan.names]}, "results": results}


def feast_timestamp(us: int) -> str:
    """Microseconds since the epoch as protobuf's JSON Timestamp (what Feast sends): UTC,
    ``Z``, and 0, 3 or 6 fraction digits."""
    seconds, fraction = divmod(us, 1_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if fraction == 0:
        return base + "Z"
    if fraction % 1000 == 0:
        return f"{base}.{fraction // 1000:03d}Z"
    return f"{base}.{fraction:06d}Z"
