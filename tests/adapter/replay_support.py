"""The served-value log as the replay tests make it: a store (or its HTTP app) with logging on,
real requests, then `served export` to Parquet, read back where a test needs the rows."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def export(store: Any, folder: Path) -> Path:
    """``served export`` of everything logged so far (flushed first) into ``folder``."""
    store.export_served(folder)
    return folder


def exported(folder: Path, view: str) -> pa.Table:
    """Every exported row of ``view``, in request order."""
    table = pq.read_table(folder / view)
    return table.sort_by("request_time")


def asgi(app: Any, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
    """One HTTP request to the feature server's ASGI app, in this process."""
    sent: list[dict] = []
    payload = b"" if body is None else json.dumps(body).encode()

    async def receive() -> dict:
        return {"type": "http.request", "body": payload, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(payload)).encode())]
    scope = {"type": "http", "method": method, "path": path, "headers": headers,
             "query_string": b"", "client": ("127.0.0.1", 1)}
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent)
