"""How a sync reads the warehouse: within a memory bound on in-process engines, shard after
shard, a few batches ahead of the writes."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import pyarrow as pa
from sqlglot import exp

from dbt_features.errors import WarehouseError
from dbt_features.warehouse import Warehouse

from .read_ahead import read_ahead
from .sync_plan import LatestRead

IN_PROCESS_SETTINGS = {"duckdb": {"memory_limit": "64MB", "preserve_insertion_order": "false"}}
"""Settings while a sync reads a relation from an in-process engine: its working memory is ours
(DuckDB spills to disk beyond the limit, and its cache of the table's blocks stays within it).
Measured at 2M entities with a string feature (4M rows): 32 MB ran out of memory, 64 MB with
500k-row shards held peak RSS at ~315 MB, at ~400k entities/s; at 1M entities x 10 rows, the
limit set for the whole sync (the digest pass included) took peak RSS from 554 MB to 417 MB.
Insertion order means nothing to a sync. The values they had are restored afterwards (the
database, and so these settings, may be shared with a connection of the user's)."""
MAX_SHARDS = 1024
READ_AHEAD = 2
"""Batches read ahead of the writes (each ``--batch-size`` rows)."""


@contextmanager
def bounded_memory(warehouse: Warehouse, active: bool) -> Iterator[None]:
    """``IN_PROCESS_SETTINGS`` for the block, if ``active`` and the engine has any."""
    con = getattr(warehouse, "con", None)
    if not active or con is None or warehouse.dialect not in IN_PROCESS_SETTINGS:
        yield
        return
    with engine_settings(con, IN_PROCESS_SETTINGS[warehouse.dialect]):
        yield


@contextmanager
def engine_settings(con: Any, settings: dict[str, str]) -> Iterator[None]:
    """``settings`` on a DuckDB connection for the block, then the values they had: the default
    (``RESET``) when they had it, else the value as DuckDB shows it (a memory limit to 0.1 of
    its unit: the exact bytes are not shown)."""
    saved = {name: _current(con, name) for name in settings}
    for name, value in settings.items():
        con.execute(_set(name, value))
    try:
        yield
    finally:
        for name, value in saved.items():
            con.execute(exp.Command(this="RESET", expression=exp.to_identifier(name).sql("duckdb"))
                        .sql("duckdb"))
            if _current(con, name) != value:
                con.execute(_set(name, value))


def _current(con: Any, name: str) -> str:
    return str(con.execute("SELECT current_setting(?)", [name]).fetchall()[0][0])


def _set(name: str, value: str) -> str:
    return exp.Set(expressions=[exp.SetItem(this=exp.EQ(
        this=exp.to_identifier(name), expression=exp.Literal.string(value)))]).sql("duckdb")


@contextmanager
def latest_batches(warehouse: Warehouse, read: LatestRead,
                   batch_size: int) -> Iterator[Iterator[pa.RecordBatch]]:
    """Every batch of ``read``, shard after shard, read ahead in a thread (``read_ahead``);
    the connection is the thread's until the block ends."""
    with read_ahead(lambda: _batches(warehouse, read, batch_size), depth=READ_AHEAD,
                    interrupt=warehouse.interrupt) as batches:
        yield batches


def _batches(warehouse: Warehouse, read: LatestRead, batch_size: int) -> Iterator[pa.RecordBatch]:
    """A shard the engine cannot hold in its memory limit is read again as its two halves
    (``query._shard_condition``; writes are idempotent: the same keys, the same values)."""
    if read.observed is not None:
        yield from warehouse.observed_batches(read.sql(), read.observed, batch_size)
        return
    pending: list[tuple[int, int] | None] = (
        [(k, read.shards) for k in range(read.shards)] if read.shards > 1 else [None])
    while pending:
        shard = pending.pop(0)
        try:
            yield from warehouse.batches(read.sql(shard), batch_size)
        except WarehouseError as exc:
            k, n = shard or (0, 1)
            if "out of memory" not in str(exc).lower() or not read.shardable or n >= MAX_SHARDS:
                raise
            pending[:0] = [(2 * k, 2 * n), (2 * k + 1, 2 * n)]
