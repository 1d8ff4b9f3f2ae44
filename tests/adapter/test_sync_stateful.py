"""Online equals offline after any history: a stateful property test (hypothesis) of sync.

A raw table plays the feature view's built relation (a DuckDB file; a PostgreSQL schema of our
own), a redis-server of our own is the online store. Rules change the table (inserts with exact
ties, NULL created times and late rows, in-place updates, deletes), the definition (ttl, a
feature column added or dropped), kill Redis (data loss) and sync, incrementally or in full.
After every sync, for every entity ever inserted, these must all agree:

* a brute-force Python reference of the documented semantics (``dbt_features.pit``): the
  latest row with ``now - ttl < ts <= now``; ties on ts to the greatest created time (NULL
  lowest), then to the greatest feature values in declared order (NULL lowest);
* the training-set engine (``get_training_set``) with a spine of every entity at ``now``;
* ``get_online_features`` of a reader opened for the check (a CLI command), and of a reader
  opened once at the start that lives through everything (a running ``serve``, whose registry
  is the first definition: it must never serve a value the training set would not);
* ``verify_views`` finds no mismatch; after a key is deliberately corrupted, it finds one.

Time: every timestamp lies on a grid of whole minutes from ``base``, one second before the
example started. Each sync's ``now`` is the wall clock (which stays inside the grid's first
minute, so no row ever sits on a ttl boundary and every step is deterministic), plus a
simulated lead of whole minutes that ``advance_time`` grows while the view has no ttl (future
rows come due); giving the view a ttl moves the table back by that lead (Redis expiries and the
online reader's ttl check follow the wall clock).

Speed: opening a DuckDB file costs ~40 ms, so the table's changes are queued and applied in one
connection just before a sync, and one read-only connection serves the sync and its checks.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine, initialize, precondition, rule, run_state_machine_as_test,
)
from sqlglot import exp

from dbt_features.errors import OnlineStoreError
from dbt_features.registry import Feature, FeatureView, Registry
from dbt_features.serving.config import OnlineConfig, connect
from dbt_features.serving.micros import to_micros
from dbt_features.serving.online import OnlineStore, Status
from dbt_features.serving.query import latest_query
from dbt_features.serving.sync import SyncOptions, sync_view
from dbt_features.serving.verify import VerifyReport, verify_views
from dbt_features.training import get_training_set
from dbt_features.warehouse import Relation, Warehouse
from helpers import PG_DSN, own_pg_schema
from redis_cluster import RedisCluster
from redis_process import RedisProcess
from stored import stored
from training_support import duckdb_warehouse, make_registry, make_view, postgres_warehouse

SETTINGS = settings(
    max_examples=int(os.environ.get("SYNC_STATEFUL_EXAMPLES", "30")), stateful_step_count=20,
    deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
VIEW = "events"
IDS = (1, 2, 3, 4, 5, 6)
TTLS = (None, 240, 480)
"""Seconds, whole minutes: a ttl boundary never falls on the minute grid plus the few seconds
an example lasts."""
OLDEST, NEWEST = -9, 2
"""Event times of new rows, in minutes from now: 1 and 2 are in the future."""
GRID_SECONDS = 55
TOGGLE_C = "add or drop column c"


def maybe(values: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly a value, sometimes NULL."""
    return st.integers(0, 4).flatmap(lambda k: st.none() if k == 0 else values)


VALUES = {
    "a": maybe(st.sampled_from([0.0, 1.5, -2.25, 1e300])),
    "b": maybe(st.sampled_from(["", "a", "b", "B", "é", "a:b"])),
    "c": maybe(st.sampled_from([0, 1, -7, 2**40])),
}
FEATURE_VALUES = st.fixed_dictionaries(VALUES)
ROW = st.fixed_dictionaries({
    "id": st.sampled_from(IDS), "ts": st.integers(OLDEST, NEWEST),
    "created": maybe(st.integers(OLDEST, NEWEST + 2)), **VALUES,
})
DTYPES = {"id": "int64", "ts": "timestamp", "created": "timestamp", "rid": "int64",
          "a": "double", "b": "string", "c": "int64"}
SQL_TYPES = {"int64": "bigint", "timestamp": "timestamp", "double": "double", "string": "varchar"}

Statement = tuple[exp.Expression, list[tuple[Any, ...]]]
Served = tuple[int, tuple[Any, ...]] | None
"""What an entity is served: (event time in microseconds, feature values), or nothing."""


# -- the upstream table, in each engine --------------------------------------------------------


@dataclass
class Upstream:
    """The raw table ``events`` (rid, id, ts, created, a, b[, c]); ``rid`` identifies a row
    for updates and deletes and is not part of the view. Changes are queued and applied at the
    start of the next ``session``, through a read-write connection closed before the warehouse
    opens (DuckDB allows one configuration per file in a process)."""

    dialect: str
    relation: Relation
    spelled: dict[str, str]
    """Column types as the engine spells them (as the registry would record them)."""
    connect: Callable[[], Any]
    """A read-write DB-API connection."""
    warehouse: Callable[[], Warehouse]
    pending: list[Statement] = field(default_factory=list)

    def table(self) -> exp.Table:
        return exp.table_(_ident(self.relation.identifier), db=_ident(self.relation.schema or ""))

    def queue(self, statement: exp.Expression, params: list[tuple[Any, ...]] | None = None) -> None:
        self.pending.append((statement, params or []))

    @contextmanager
    def session(self) -> Iterator[Warehouse]:
        """Apply the queued changes; then one read-only warehouse connection for a sync and
        its checks."""
        if self.pending:
            con = self.connect()
            try:
                cur = con.cursor()
                for statement, params in self.pending:
                    sql = statement.sql(dialect=self.dialect)
                    cur.executemany(sql, params) if params else cur.execute(sql)
                con.commit()
            finally:
                con.close()
            self.pending = []
        with self.warehouse() as wh:
            yield wh

    def reset(self) -> None:
        columns = [exp.ColumnDef(this=_ident(name), kind=exp.DataType.build(SQL_TYPES[DTYPES[name]]))
                   for name in ("rid", "id", "ts", "created", "a", "b")]
        self.queue(exp.Drop(tables=[self.table()], kind="TABLE", exists=True))
        self.queue(exp.Create(kind="TABLE", this=exp.Schema(this=self.table(), expressions=columns)))


def duckdb_upstream(path: Path) -> Upstream:
    import duckdb

    return Upstream("duckdb", Relation(path.stem, "main", VIEW),
                    {"id": "BIGINT", "ts": "TIMESTAMP", "a": "DOUBLE", "b": "VARCHAR", "c": "BIGINT"},
                    lambda: duckdb.connect(str(path)), lambda: duckdb_warehouse(path))


def postgres_upstream(schema: str) -> Upstream:
    import psycopg2

    up = Upstream("postgres", Relation("test", schema, VIEW),
                  {"id": "bigint", "ts": "timestamp without time zone", "a": "double precision",
                   "b": "character varying", "c": "bigint"},
                  lambda: psycopg2.connect(PG_DSN), postgres_warehouse)
    up.queue(exp.Create(kind="SCHEMA", exists=True, this=exp.Table(this=_ident(schema))))
    return up


# -- the definition ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """What the feature view declares."""

    created: bool
    ttl: int | None
    with_c: bool

    @property
    def features(self) -> tuple[str, ...]:
        return ("a", "b", "c") if self.with_c else ("a", "b")


def feature_view(up: Upstream, shape: Shape) -> FeatureView:
    view = make_view(
        VIEW, up.relation.schema, database=up.relation.database,
        keys=[("id", "int64", up.spelled["id"])], timestamp=("ts", up.spelled["ts"]),
        created="created" if shape.created else None, ttl=shape.ttl,
        features=[(f, DTYPES[f], up.spelled[f]) for f in shape.features])
    return replace(view, online=True,
                   fingerprint=f"created={shape.created};features={','.join(shape.features)}")


def low(value: Any) -> tuple[bool, Any]:
    """Sort key putting NULL below every value (strings compare by code point)."""
    return (value is not None, value if value is not None else 0)


# -- the machine -------------------------------------------------------------------------------


class SyncMachine(RuleBasedStateMachine):
    def __init__(self, up: Upstream, server: RedisProcess | RedisCluster, tmp: Path) -> None:
        super().__init__()
        self.up, self.server = up, server
        started = datetime.now(timezone.utc).replace(microsecond=0, tzinfo=None)
        self.base = started - timedelta(seconds=1)
        self.config = OnlineConfig(server.url, f"dbtf_stateful_{uuid.uuid4().hex[:8]}",
                                   "the stateful test", tmp / "unused")
        self.rows: dict[int, dict[str, Any]] = {}
        self.next_rid = 1
        self.ever: set[int] = set()
        self.shape = Shape(False, None, False)
        self.reader: OnlineStore | None = None
        self.reader_view: FeatureView | None = None
        self.reader_restarted = False
        self.clock = 0
        """Minutes the simulated clock is ahead of the wall clock. Only while the view has no
        ttl: Redis expiries and the reader's ttl check follow the wall clock."""
        self.high: tuple[int, int | None] | None = None
        """Greatest event and created time (minutes) of the rows the syncs so far could read."""
        self.expected: dict[int, Served] = {}
        self.clean = False
        """Nothing changed since a sync whose checks passed (so a corruption is all verify
        can find)."""

    def moment(self, minutes: int | None) -> datetime | None:
        return None if minutes is None else self.base + timedelta(minutes=minutes)

    def now(self) -> datetime:
        wall = datetime.now(timezone.utc)
        if (wall.replace(tzinfo=None) - self.base).total_seconds() > GRID_SECONDS:
            raise RuntimeError("this example ran over a minute: the time grid no longer holds")
        return wall + timedelta(minutes=self.clock)

    def view(self) -> FeatureView:
        return feature_view(self.up, self.shape)

    def registry(self, view: FeatureView) -> Registry:
        return make_registry([view], self.up.dialect)

    def open_online(self, registry: Registry) -> OnlineStore:
        client, _ = connect(self.config)
        return OnlineStore(registry, self.config, client)

    def insert_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        columns = ["rid", "id", "ts", "created", *self.shape.features]
        params = []
        for row in rows:
            stored = {"rid": self.next_rid, **{k: row.get(k) for k in columns[1:]}}
            self.next_rid += 1
            self.rows[stored["rid"]] = stored
            self.ever.add(stored["id"])
            params.append(tuple(self.moment(stored[c]) if c in ("ts", "created") else stored[c]
                                for c in columns))
        self.up.queue(_insert(self.up, columns), params)
        self.clean = False

    # -- rules -----------------------------------------------------------------------------

    @initialize(created=st.booleans(), ttl=st.sampled_from(TTLS),
                rows=st.lists(ROW, min_size=3, max_size=12))
    def start(self, created: bool, ttl: int | None, rows: list[dict[str, Any]]) -> None:
        self.up.reset()
        self.shape = Shape(created, ttl, False)
        self.insert_rows(rows)
        self.reader_view = self.view()
        self.reader = self.open_online(self.registry(self.reader_view))

    @rule(data=st.data())
    def insert(self, data: st.DataObject) -> None:
        """New rows; or an exact tie (same entity, event and created time as a row already
        there, other values); or a late row (event and/or created time below what the syncs
        so far have read)."""
        kinds = ["new"] + (["exact tie"] if self.rows else []) + (["late"] if self.high else [])
        kind = data.draw(st.sampled_from(kinds), label="kind")
        if kind == "new":
            rows = data.draw(st.lists(ROW, min_size=1, max_size=6), label="rows (times from now)")
            self.insert_rows([{**r, "ts": r["ts"] + self.clock, "created":
                               None if r["created"] is None else r["created"] + self.clock}
                              for r in rows])
        elif kind == "exact tie":
            twin = self.rows[data.draw(st.sampled_from(sorted(self.rows)), label="twin of rid")]
            self.insert_rows([{**twin, **data.draw(FEATURE_VALUES, label="values")}])
        else:
            assert self.high is not None
            top_ts, top_created = self.high
            row = data.draw(ROW, label="row")
            row["ts"] = top_ts - data.draw(st.integers(1, 9), label="minutes before the top ts")
            if top_created is not None:
                row["created"] = data.draw(maybe(st.integers(1, 9).map(lambda k: top_created - k)),
                                           label="late created")
            self.insert_rows([row])

    @precondition(lambda self: self.rows)
    @rule(data=st.data())
    def update_values(self, data: st.DataObject) -> None:
        rid = data.draw(st.sampled_from(sorted(self.rows)), label="rid")
        values = data.draw(FEATURE_VALUES, label="values")
        names = self.shape.features
        self.rows[rid].update({n: values[n] for n in names})
        update = exp.update(self.up.table(), {_ident(n): exp.Placeholder() for n in names},
                            where=_equals("rid"))
        self.up.queue(update, [(*(values[n] for n in names), rid)])
        self.clean = False

    @precondition(lambda self: self.rows)
    @rule(data=st.data(), whole_entity=st.booleans())
    def delete(self, data: st.DataObject, whole_entity: bool) -> None:
        """Every row of one entity, or one row."""
        if whole_entity:
            column = "id"
            ids = sorted({r["id"] for r in self.rows.values()})
            value = data.draw(st.sampled_from(ids), label="id")
        else:
            column, value = "rid", data.draw(st.sampled_from(sorted(self.rows)), label="rid")
        self.rows = {rid: r for rid, r in self.rows.items() if r[column] != value}
        self.up.queue(exp.delete(self.up.table(), where=_equals(column)), [(value,)])
        self.clean = False

    @precondition(lambda self: self.shape.ttl is None)
    @rule(minutes=st.integers(1, 4))
    def advance_time(self, minutes: int) -> None:
        """Future rows come due."""
        self.clock += minutes
        self.clean = False

    def rebase(self) -> None:
        """Move every row back by the simulated clock's lead, and the clock back to the wall
        clock (a backfill of the whole table, as far as a sync can tell)."""
        shift = exp.Interval(this=exp.Literal.string(str(self.clock)), unit=exp.Var(this="MINUTE"))
        self.up.queue(exp.update(self.up.table(), {
            _ident(c): exp.Sub(this=exp.column(c, quoted=True), expression=shift.copy())
            for c in ("ts", "created")}))
        for row in self.rows.values():
            row["ts"] -= self.clock
            row["created"] = None if row["created"] is None else row["created"] - self.clock
        if self.high is not None:
            top_ts, top_created = self.high
            self.high = (top_ts - self.clock,
                         None if top_created is None else top_created - self.clock)
        self.clock = 0

    @rule(change=st.one_of(st.sampled_from(TTLS), st.just(TOGGLE_C)))
    def change_definition(self, change: int | None | str) -> None:
        """Another ttl, or feature ``c`` added to (dropped from) the table and the view."""
        self.clean = False
        if change != TOGGLE_C:
            if change is not None and self.clock:
                self.rebase()
            self.shape = replace(self.shape, ttl=change)  # type: ignore[arg-type]
            return
        if self.shape.with_c:
            action: exp.Expression = exp.Drop(tables=[exp.column("c", quoted=True)], kind="COLUMN")
        else:
            action = exp.ColumnDef(this=_ident("c"), kind=exp.DataType.build("bigint"))
        self.up.queue(exp.Alter(this=self.up.table(), kind="TABLE", actions=[action]))
        for row in self.rows.values():
            if self.shape.with_c:
                del row["c"]
            else:
                row["c"] = None
        self.shape = replace(self.shape, with_c=not self.shape.with_c)

    @precondition(lambda self: self.server.restartable)
    @rule()
    def restart_redis_empty(self) -> None:
        self.server.restart_empty()
        self.reader_restarted = True
        self.clean = False

    @rule()
    def sync_incremental(self) -> None:
        self.sync(full_refresh=False)

    @rule()
    def sync_full_refresh(self) -> None:
        self.sync(full_refresh=True)

    def valued(self) -> list[int]:
        """Entities served with at least one non-NULL value: verify compares the values each
        side serves, so only there can a lost or overwritten key show."""
        return sorted(i for i, served in self.expected.items()
                      if served is not None and any(v is not None for v in served[1]))

    @precondition(lambda self: self.clean and self.valued())
    @rule(data=st.data(), overwrite=st.booleans())
    def corrupt_one_key(self, data: st.DataObject, overwrite: bool) -> None:
        """Overwrite an entity's key with another entity's blob (or delete it): verify must
        notice; then the key is restored and verify is clean again."""
        victim = data.draw(st.sampled_from(self.valued()), label="victim")
        values = self.expected[victim][1]  # type: ignore[index]
        donors = [i for i, served in self.expected.items()
                  if served is not None and served[1] != values]
        online = self.open_online(self.registry(self.view()))
        client, prefix = online.client, self.config.key_prefix
        try:
            place = stored(client, prefix, VIEW, victim)
            saved, expires = place.get(client), client.pexpiretime(place.key)
            assert saved is not None, f"no value stored for id={victim}"
            if overwrite and donors:
                donor = data.draw(st.sampled_from(donors), label="donor")
                place.put(client, stored(client, prefix, VIEW, donor).get(client))
            else:
                place.delete(client)
            with self.up.session() as wh:
                report = self.verify(wh, online, self.now())
                assert report.exit_code == 1, f"verify missed a corrupted key:\n{report.format()}"
                place.put(client, saved)
                if expires > 0:  # deleting the last field deleted the bucket and its expiry
                    client.pexpireat(place.key, expires)
                report = self.verify(wh, online, self.now())
                assert report.exit_code == 0, f"verify after restoring the key:\n{report.format()}"
        finally:
            online.close()

    # -- what must hold after a sync -------------------------------------------------------

    def sync(self, full_refresh: bool) -> None:
        view = self.view()
        online = self.open_online(self.registry(view))
        try:
            with self.up.session() as wh:
                now = self.now()
                self.sync_once_more_if_replicas_lag(online, view, wh, full_refresh, now)
                visible = [r for r in self.rows.values()
                           if r["ts"] <= self.clock and self.in_ttl(r["ts"])]
                if visible:
                    created = [r["created"] for r in visible if r["created"] is not None]
                    self.high = (max(r["ts"] for r in visible), max(created, default=None))
                self.check(wh, online, now)
        finally:
            online.close()
        self.clean = True

    def sync_once_more_if_replicas_lag(self, online: OnlineStore, view: FeatureView,
                                       wh: Warehouse, full_refresh: bool, now: datetime) -> None:
        """``sync_view``. On a Redis Cluster whose replica confirms a write later than the sync
        waits (``cluster.REPLICATION_TIMEOUT_MS``: seconds, on cores busy with other jobs), the
        sync fails loudly and publishes nothing, as designed; the machine checks that it
        published nothing, then does what the message says: it syncs again."""
        options = SyncOptions(full_refresh=full_refresh)
        meta = online.keys.meta(view.name)
        published = ("gen_id", "last_sync")
        before = online.client.hmget(meta, published)
        try:
            sync_view(online, view, wh, options, now=now)
        except OnlineStoreError as exc:
            if not isinstance(self.server, RedisCluster) or "replicas within" not in str(exc):
                raise
            after = online.client.hmget(meta, published)
            assert after == before, f"a sync that failed ({exc}) published {after}, was {before}"
            sync_view(online, view, wh, options, now=now)

    def in_ttl(self, minutes: int) -> bool:
        ttl = self.shape.ttl
        return ttl is None or (minutes - self.clock) * 60 > -ttl

    def reference(self, entity: int) -> Served:
        """The documented semantics, row by row (see dbt_features.pit)."""
        best, best_order = None, None
        for row in self.rows.values():
            if row["id"] != entity or row["ts"] > self.clock or not self.in_ttl(row["ts"]):
                continue
            order = (row["ts"], *((low(row["created"]),) if self.shape.created else ()),
                     *(low(row[f]) for f in self.shape.features))
            if best_order is None or order > best_order:
                best, best_order = row, order
        if best is None:
            return None
        event = to_micros(self.moment(best["ts"]))  # type: ignore[arg-type]
        return event, tuple(best[f] for f in self.shape.features)

    def training(self, wh: Warehouse, ids: list[int], now: datetime) -> dict[int, Served]:
        """The training-set engine with a spine of every entity at ``now``; the view's event
        time rides along as one more feature (as verify does) to tell "no row" from NULLs."""
        view = self.view()
        ts = view.timestamp
        assert ts is not None
        with_ts = replace(view, features=view.features + (
            Feature(ts.name, ts.dtype, ts.data_type, None, ""),))
        at = now.astimezone(timezone.utc).replace(tzinfo=None)
        spine = pa.table({"id": pa.array(ids, pa.int64()),
                          "as_of": pa.array([at] * len(ids), pa.timestamp("us"))})
        table = get_training_set(self.registry(with_ts), lambda: nullcontext(wh), spine,
                                 [f"{VIEW}:*"], spine_timestamp="as_of", full_feature_names=True)
        out: dict[int, Served] = {}
        for row in table.to_pylist():
            event = row[f"{VIEW}__ts"]
            out[row["id"]] = None if event is None else (
                to_micros(event), tuple(row[f"{VIEW}__{f}"] for f in self.shape.features))
        return out

    def check(self, wh: Warehouse, online: OnlineStore, now: datetime) -> None:
        ids = sorted(self.ever)
        self.expected = {i: self.reference(i) for i in ids}
        offline = self.training(wh, ids, now)
        assert offline == self.expected, self.explain(
            "the training set disagrees with the brute-force reference", offline)
        served = {i: s for i, (s, _) in read(online, self.view(), ids).items()}
        assert served == self.expected, self.explain(
            "the online store (a reader opened after the sync) disagrees with the training set",
            served)
        self.check_running_reader(ids)
        report = self.verify(wh, online, now)
        assert report.exit_code == 0, f"verify found mismatches after a sync:\n{report.format()}"

    def check_running_reader(self, ids: list[int]) -> None:
        """The reader opened at the start (like a running ``serve``, with the first registry):
        it may lack a feature added since and may judge expiry by its own ttl, but whatever it
        serves as present is what the training set says now."""
        assert self.reader is not None and self.reader_view is not None
        try:
            got = read(self.reader, self.reader_view, ids)
        except OnlineStoreError:
            if not self.reader_restarted:
                raise
            got = read(self.reader, self.reader_view, ids)  # its connection died with Redis
        self.reader_restarted = False
        if self.reader_view == self.view():
            served = {i: s for i, (s, _) in got.items()}
            assert served == self.expected, self.explain(
                "a long-running reader disagrees with the training set", served)
            return
        for i in ids:
            for name, (status, value) in got[i][1].items():
                expected = self.expected[i]
                if status is not Status.PRESENT:
                    continue
                want = (expected[1][self.shape.features.index(name)]
                        if expected is not None and name in self.shape.features else "<nothing>")
                assert value == want, (
                    f"a long-running reader (registry of ttl {self.reader_view.ttl_seconds}, "
                    f"features {[f.name for f in self.reader_view.features]}) serves "
                    f"{VIEW}:{name} = {value!r} for id={i} as present; the training set has "
                    f"{want!r} now (shape {self.shape}).\n{self.history(i)}")

    def verify(self, wh: Warehouse, online: OnlineStore, now: datetime) -> VerifyReport:
        view = self.view()
        return verify_views([view], self.registry(view), online,
                            lambda: nullcontext(wh),  # type: ignore[arg-type, return-value]
                            sample=1000, seed=0, now=now)

    def explain(self, what: str, got: dict[int, Served]) -> str:
        lines = [f"{what} (shape {self.shape}, base {self.base}):"]
        for i, want in self.expected.items():
            if got.get(i) != want:
                lines.append(f"  id={i}: expected {want}, got {got.get(i)}\n{self.history(i)}")
        return "\n".join(lines)

    def history(self, entity: int) -> str:
        rows = [r for r in self.rows.values() if r["id"] == entity]
        return "\n".join(f"    row {r}" for r in rows) or "    (no rows)"

    def teardown(self) -> None:
        if self.reader is not None:
            self.reader.close()
        client = self.server.client()
        try:
            # On a cluster, a view's meta, gen and lock keys start with "{" (a hash tag).
            keys = list(client.scan_iter(match=f"*{self.config.key_prefix}:*", count=1000))
            if keys:
                client.unlink(*keys)
        finally:
            client.close()


def _ident(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


def _insert(up: Upstream, columns: Sequence[str]) -> exp.Expression:
    return exp.insert(exp.values([tuple(exp.Placeholder() for _ in columns)]), up.table(),
                      columns=[_ident(c) for c in columns])


def _equals(column: str) -> exp.Expression:
    return exp.EQ(this=exp.column(column, quoted=True), expression=exp.Placeholder())


def read(online: OnlineStore, view: FeatureView,
         ids: list[int]) -> dict[int, tuple[Served, dict[str, tuple[Status, Any]]]]:
    """Per entity: what is served ((event time, values) when every feature is present, else
    None), and per feature its status and value."""
    names = [f.name for f in view.features]
    response = online.get_online_features([f"{VIEW}:{n}" for n in names], [{"id": i} for i in ids])
    out = {}
    for k, i in enumerate(ids):
        by_feature = {n: (response.statuses[j][k], response.values[j][k])
                      for j, n in enumerate(names)}
        present = all(s is Status.PRESENT for s, _ in by_feature.values())
        values = tuple(v for _, v in by_feature.values())
        out[i] = ((response.event_us[0][k], values) if present else None, by_feature)
    return out


# -- the tests ---------------------------------------------------------------------------------


def run_machine(up: Upstream, tmp: Path, server: RedisProcess | RedisCluster | None = None,
                **options: Any) -> None:
    with server or RedisProcess() as running:
        run_state_machine_as_test(lambda: SyncMachine(up, running, tmp),
                                  settings=settings(SETTINGS, **options))


@pytest.mark.slow
def test_duckdb_online_equals_training_set_after_any_history(tmp_path: Path) -> None:
    run_machine(duckdb_upstream(tmp_path / "features.duckdb"), tmp_path)


@pytest.mark.slow
def test_redis_cluster_online_equals_training_set_after_any_history(tmp_path: Path) -> None:
    """The same machine on a Redis Cluster (every rule but the restart: see test_cluster for
    the cluster's faults)."""
    examples = int(os.environ.get("SYNC_STATEFUL_CLUSTER_EXAMPLES", "10"))
    run_machine(duckdb_upstream(tmp_path / "features.duckdb"), tmp_path, RedisCluster(),
                max_examples=examples)


@pytest.mark.postgres
@pytest.mark.slow
def test_postgres_online_equals_training_set_after_any_history(tmp_path: Path) -> None:
    with own_pg_schema("dbtf_stateful") as schema:
        run_machine(postgres_upstream(schema), tmp_path)


@pytest.mark.parametrize("offset_us", [-1, 0, 1])
def test_sync_and_training_sets_agree_at_the_ttl_boundary(tmp_path: Path, offset_us: int) -> None:
    """The stateful test keeps rows off the ttl boundary (the online reader's clock is the wall
    clock); here, at ``now = event time + ttl`` exactly and a microsecond either side, the sync
    query must keep the row exactly when the training set does."""
    up = duckdb_upstream(tmp_path / "boundary.duckdb")
    up.reset()
    event = datetime(2026, 1, 1, 12)
    up.queue(_insert(up, ["rid", "id", "ts", "created", "a", "b"]),
             [(1, 1, event, None, 1.5, "x")])
    view = feature_view(up, Shape(created=False, ttl=60, with_c=False))
    now = event + timedelta(seconds=60, microseconds=offset_us)
    spine = pa.table({"id": pa.array([1], pa.int64()),
                      "as_of": pa.array([now], pa.timestamp("us"))})
    with up.session() as wh:
        trained = get_training_set(make_registry([view], "duckdb"),
                                   lambda: nullcontext(wh),  # type: ignore[arg-type, return-value]
                                   spine, [f"{VIEW}:a"], spine_timestamp="as_of")
        synced = wh.arrow(latest_query(view, "duckdb", now.replace(tzinfo=timezone.utc)))
    assert trained.column("a").to_pylist() == [1.5 if synced.num_rows else None], (
        f"at ts + ttl {offset_us:+d} us: the training set has {trained.column('a').to_pylist()}, "
        f"the sync query {synced.num_rows} row(s)")
