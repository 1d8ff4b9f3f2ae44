"""Feast's online-serving wire format: the request checked, the response encoded.

What Feast's Python feature server accepts on ``POST /get-online-features`` and what it sends
back (``feast.feature_server_utils.convert_response_to_dict`` of its response proto), so that
Feast clients work unchanged. Kept apart from the HTTP server: pure functions of the request,
the plan and an ``OnlineResponse``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Sequence

from dbt_features.registry import is_unicode

from .response import FEAST_NAMES, OnlineResponse, json_values, per_column, status_names
from .timestamp_text import EPOCH_FEAST as EPOCH
from .timestamp_text import feast_text, texts

try:
    import orjson
except ImportError:  # pragma: no cover - optional: the json module does the same, slower
    orjson = None

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
    """The response as Feast's server sends it. Built for encoding: lists may be shared between
    columns (features of one view share their statuses and event times)."""
    results: list[dict[str, Any]] = [
        {"values": entities[k], "statuses": ["PRESENT"] * n, "event_timestamps": [EPOCH] * n}
        for k in shown
    ]
    statuses = per_column(lambda column: status_names(column, FEAST_NAMES))
    stamps = per_column(lambda column: texts(column, feast_text, EPOCH))
    for values, dtype, status, events in zip(response.values, response.dtypes,
                                             response.statuses, response.event_us):
        results.append({"values": feast_values(values, dtype), "statuses": statuses(status),
                        "event_timestamps": stamps(events)})
    return {"metadata": {"feature_names": [*shown, *plan.names]}, "results": results}


def feast_values(column: Sequence[Any], dtype: str) -> Sequence[Any]:
    """A value column as Feast sends it: timestamps and dates in ISO 8601, non-finite doubles
    as protobuf's JSON spells them (valid JSON), the rest as they are."""
    if dtype == "double":
        # filter(None, ...) drops None and 0.0, both finite: the check stays in C.
        if not all(map(math.isfinite, filter(None, column))):
            return [_FINITE.get(repr(v), v) for v in column]
        return column
    return json_values(column, dtype) if dtype in ("timestamp", "date") else column


def encode(data: dict[str, Any]) -> bytes:
    """Compact JSON: orjson when installed (several times faster on floats), else the json
    module; the json module also takes what orjson refuses (an integer key beyond 64 bits as
    sent, echoed back)."""
    if orjson is not None:
        try:
            return orjson.dumps(data)
        except TypeError:
            pass
    return json.dumps(data, separators=(",", ":")).encode()


def encode_response(plan: Plan, shown: list[str], entities: dict[str, list[Any]], n: int,
                    response: OnlineResponse) -> bytes:
    """The body of a 200 answer to ``/get-online-features``."""
    return encode(feast_response(plan, shown, entities, n, response))


feast_timestamp = feast_text
"""Microseconds since the epoch as protobuf's JSON Timestamp (what Feast sends): UTC,
``Z``, and 0, 3 or 6 fraction digits."""
