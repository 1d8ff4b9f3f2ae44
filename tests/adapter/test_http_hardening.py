"""The HTTP server against hostile or broken clients, over real sockets: every error is a JSON
answer counted in /metrics by status code, and a client too slow to send its request (headers
or body) is answered 408 and disconnected when the request timeout runs out."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from helpers import make_project
from dbt_features.store import FeatureStore
from http_support import Server, call

TIMEOUT_S = 2
DEVICES = """{{ config(meta={'feature_store': {'entity': 'device_id', 'timestamp': 'ts',
                                              'online': true}}) }}
select 'dev-' || cast(i as varchar) as device_id, cast(now() as timestamp) as ts,
       i * 1.5 as score
from range(3) as t(i)
"""


@pytest.fixture(scope="module")
def string_key_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A view whose key is a string (the sample's keys are integers)."""
    return make_project(tmp_path_factory.mktemp("strkey") / "proj", {"models/devices.sql": DEVICES})


@pytest.fixture
def server(string_key_project: Path, redis_prefix: str) -> Iterator[Server]:
    FeatureStore(project_dir=str(string_key_project)).sync()
    served = Server(string_key_project, "--request-timeout", str(TIMEOUT_S))
    yield served
    served.stop()


@dataclass
class Exchange:
    """What a raw client got: the bytes answered, and when the server closed the socket."""

    status: int | None
    headers: dict[str, str]
    body: object
    closed_after: float
    """Seconds from connecting to the server closing the connection."""


def slow_client(port: int, data: bytes, *, interval: float, limit: float = 30) -> Exchange:
    """Connect, send ``data`` one byte every ``interval`` seconds (then nothing), read until
    the server closes the connection."""
    started = time.monotonic()
    received = b""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(0.05)
        sent, next_send = 0, started
        while time.monotonic() - started < limit:
            if sent < len(data) and time.monotonic() >= next_send:
                try:
                    sock.send(data[sent:sent + 1])
                except OSError:
                    break  # the server has closed the connection
                sent, next_send = sent + 1, next_send + interval
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not chunk:
                break
            received += chunk
    return _parse(received, time.monotonic() - started)


def _parse(raw: bytes, seconds: float) -> Exchange:
    if not raw:
        return Exchange(None, {}, None, seconds)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return Exchange(int(lines[0].split()[1]), headers, json.loads(body), seconds)


def _post(server: Server, body: bytes) -> tuple[int, object]:
    status, data, _ = call(f"{server.url}/get-online-features", raw=body)
    return status, data


def _codes(server: Server) -> dict[tuple[str, str], int]:
    """dbt_features_http_requests_total by (endpoint, code)."""
    _status, text, _ = call(f"{server.url}/metrics")
    counts = {}
    for line in str(text).splitlines():
        if line.startswith("dbt_features_http_requests_total{"):
            labels, value = line[len("dbt_features_http_requests_total{"):].split("} ")
            parts = dict(p.split("=") for p in labels.split(","))
            counts[(parts["endpoint"].strip('"'), parts["code"].strip('"'))] = int(value)
    return counts


def test_string_keys_read_and_a_lone_surrogate_is_422(server: Server) -> None:
    status, data = _post(server, json.dumps({
        "features": ["devices:score"], "entities": {"device_id": ["dev-2", "nope"]}}).encode())
    assert status == 200, data
    assert data["results"][1]["values"] == [3.0, None]
    status, data = _post(server, b'{"features": ["devices:score"], '
                                 b'"entities": {"device_id": ["dev-1", "\\ud800"]}}')
    assert status == 422, data
    assert data == {"status": 422, "error": 'entities.device_id[1] is "\\ud800", which holds a '
                    "lone UTF-16 surrogate: send keys as valid Unicode text."}


def test_a_deeply_nested_body_is_a_json_400(server: Server) -> None:
    depth = 200_000
    body = (b'{"features": ["devices:score"], "entities": {"device_id": '
            + b"[" * depth + b"]" * depth + b"}}")
    status, data = _post(server, body)
    assert status == 400, data
    assert "nested too deeply" in data["error"]
    # A shallower nesting that parses is a type error, its value not echoed whole.
    status, data = _post(server, b'{"features": ["devices:score"], "entities": {"device_id": ['
                         + b"[" * 500 + b"]" * 500 + b"]}}")
    assert status == 422 and len(data["error"]) < 300, data
    codes = _codes(server)
    assert codes[("/get-online-features", "400")] == 1
    assert codes[("/get-online-features", "422")] == 1


def test_invalid_http_is_a_counted_json_400(server: Server) -> None:
    got = slow_client(server.port, b"NOT HTTP AT ALL\r\n\r\n", interval=0)
    assert got.status == 400 and got.headers["content-type"] == "application/json"
    assert got.body == {"status": 400, "error": "the request is not valid HTTP/1.1: check the "
                        "request line and headers."}
    assert _codes(server)[("other", "400")] == 1


def test_slow_clients_get_a_408_and_are_disconnected(server: Server) -> None:
    body = json.dumps({"features": ["devices:score"], "entities": {"device_id": ["dev-1"]}})
    request = (f"POST /get-online-features HTTP/1.1\r\nHost: x\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    # Headers one byte every 0.3 s: they would take about 30 s.
    headers = slow_client(server.port, request, interval=0.3)
    # The headers at once, then the body one byte every 0.3 s.
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(request)
        started = time.monotonic()
        sock.settimeout(0.3)
        received = b""
        for byte in body.encode():
            try:
                sock.send(bytes([byte]))
                chunk = sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not chunk:
                break
            received += chunk
        while chunk := _recv(sock):
            received += chunk
        slow_body = _parse(received, time.monotonic() - started)
    # Connected, and nothing sent at all.
    idle = slow_client(server.port, b"", interval=1)

    for got in (headers, slow_body, idle):
        assert got.status == 408, got
        assert got.headers["content-type"] == "application/json"
        assert got.headers["connection"] == "close"
        assert got.body["status"] == 408 and f"within {TIMEOUT_S} s" in got.body["error"]
        assert TIMEOUT_S - 0.5 < got.closed_after < TIMEOUT_S + 3, got
    codes = _codes(server)
    assert codes[("/get-online-features", "408")] == 1  # the slow body
    assert codes[("other", "408")] == 2  # before the path had arrived
    # The server still answers normally.
    status, data, _ = call(f"{server.url}/get-online-features", json.loads(body))
    assert status == 200, data


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except (socket.timeout, OSError):
        return b""
