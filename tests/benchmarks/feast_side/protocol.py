"""The line protocol between ``bench_vs_feast.py`` and its two workers (one per side).

Stdlib only: it is imported both by the Feast worker (``.venv-feast``) and by the dbt-features
worker (``.venv``). A worker reads one JSON command per line on stdin and answers each with one
JSON line on stdout; everything else a library prints goes to stderr, so that a log line can
never corrupt the protocol. A worker lives for the whole run, so the peak RSS of its process
tree is that side's peak over training sets, materialization and reads alike.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import statistics
import sys
import time
import traceback
from typing import Any, Callable

Handler = Callable[[dict], dict]


def serve(handlers: dict[str, Handler]) -> None:
    """Answer commands until ``quit`` (or the end of stdin)."""
    channel = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # C extensions and print() now write to stderr, not into the protocol
    sys.stdout = sys.stderr
    handlers = {"rusage": rusage, **handlers}
    for line in sys.stdin:
        command = json.loads(line)
        if command["op"] == "quit":
            break
        try:
            answer = handlers[command["op"]](command)
        except Exception:  # the orchestrator prints it and stops the run
            answer = {"error": traceback.format_exc()}
        channel.write(json.dumps(answer) + "\n")
        channel.flush()


def rusage(_: dict) -> dict:
    """This process's peak RSS (and its reaped children's), in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"self_mb": own, "children_mb": children}


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def read_round(read: Callable[[list[dict]], Any], requests: list[list[int]], key: str) -> dict:
    """Time ``read(entity_rows)`` once per request; p50 and p99 in ms. The entity rows are
    built before timing, the same way on both sides."""
    rows = [[{key: i} for i in ids] for ids in requests]
    gc.collect()
    timings = []
    for entity_rows in rows:
        started = time.perf_counter()
        read(entity_rows)
        timings.append(time.perf_counter() - started)
    return {"p50_ms": statistics.median(timings) * 1000,
            "p99_ms": percentile(timings, 0.99) * 1000, "requests": len(timings)}


def column_checksums(columns: dict[str, list]) -> dict:
    """Per feature column: non-null count and sum (order-independent), to show that both
    sides computed the same training set."""
    out = {}
    for name, values in sorted(columns.items()):
        present = [v for v in values if v is not None and v == v]  # v == v drops NaN
        out[name] = {"count": len(present), "sum": float(sum(present))}
    return out
