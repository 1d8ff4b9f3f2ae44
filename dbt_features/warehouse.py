"""Connections to the offline store, opened from the dbt profile's own credentials.

One small class per dbt adapter type, keyed by that type (as sqlglot keys its dialects): each
knows its sqlglot dialect, how to describe a relation's columns, and how to return a query's
rows as Arrow, whole or in record batches. Any adapter type gets a dialect for printing SQL;
only the ones below can be queried.
"""

from __future__ import annotations

import io
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterator

from sqlglot import exp

import pyarrow as pa

from .errors import WarehouseError
from .pg_values import register_strict_datetimes, rows_to_arrow
from .project import Project, duckdb_lock_message, load_credentials, target_name
from .relation import Relation
from .types import arrow_logical

# dbt adapter type -> sqlglot dialect.
DIALECTS = {
    "duckdb": "duckdb",
    "postgres": "postgres",
    "redshift": "redshift",
    "snowflake": "snowflake",
    "bigquery": "bigquery",
    "spark": "spark",
    "databricks": "databricks",
    "trino": "trino",
    "athena": "athena",
    "clickhouse": "clickhouse",
}


_DESCRIBE = (
    exp.select("column_name", "data_type")
    .from_("information_schema.columns")
    .where(exp.and_(
        exp.EQ(this=exp.column("table_schema"), expression=exp.Placeholder()),
        exp.EQ(this=exp.column("table_name"), expression=exp.Placeholder()),
    ))
    .order_by("ordinal_position")
)
"""A relation's columns and types, in order (schema and name as parameters)."""


def dialect_for(adapter_type: str) -> str:
    return DIALECTS.get(adapter_type, adapter_type)


@dataclass(frozen=True)
class Observed:
    """Aggregates of a query's input rows, computed while the query reads them (one scan).

    ``source`` (SQL) is the input, which the query reads by ``name``; ``keys``: the query
    needs its rows grouped by these columns (they are redistributed by them, the step after
    which every aggregate is complete); ``aggregates``: output name -> aggregate SQL over
    ``source``'s columns."""

    source: str
    name: str
    keys: tuple[str, ...]
    aggregates: tuple[tuple[str, str], ...]


class Warehouse:
    """A live connection to the target's warehouse. Use as a context manager."""

    adapter_type: ClassVar[str] = ""
    dialect: ClassVar[str] = ""
    observes = False
    """Whether ``observed_batches`` is supported (a dbt-spark ``session``)."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __enter__(self) -> "Warehouse":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def describe(self, relation: Relation) -> dict[str, str] | None:
        """Column name -> type as the warehouse spells it; None if the relation does not exist."""
        sql = _DESCRIBE.sql(dialect=self.dialect)  # placeholders in the driver's style
        rows = self.arrow(sql, self._describe_params(relation)).to_pylist()
        if not rows:
            return None
        return {str(r["column_name"]): str(r["data_type"]) for r in rows}

    def _describe_params(self, relation: Relation) -> list[Any]:
        return [relation.schema, relation.identifier]

    def arrow(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        raise NotImplementedError  # pragma: no cover

    def batches(self, sql: str, batch_size: int = 100_000) -> Iterator[pa.RecordBatch]:
        raise NotImplementedError  # pragma: no cover

    def observed_batches(self, sql: str, observed: Observed,
                         batch_size: int = 100_000) -> Iterator[pa.RecordBatch]:
        """``batches`` of ``sql``, which reads ``observed.source`` by ``observed.name``;
        ``observed_values(observed)`` holds the aggregates once the first batch has come (or
        the read has ended)."""
        raise NotImplementedError  # pragma: no cover

    def observed_values(self, observed: Observed) -> dict[str, Any] | None:
        """The aggregates of the last ``observed_batches`` of ``observed``; None before."""
        raise NotImplementedError  # pragma: no cover

    def interrupt(self) -> None:
        """Stop the query running on this connection, from another thread (a no-op when none
        runs); the query then raises ``WarehouseError``."""

    @contextmanager
    def spine(self, table: pa.Table) -> Iterator[exp.Table]:
        """Make an Arrow table queryable for the duration of the block, without writing to any
        schema of the user's: DuckDB registers it on the read-only connection, PostgreSQL
        copies it into a temporary table dropped at the end. Yields its (quoted) name."""
        raise NotImplementedError  # pragma: no cover
        yield  # pragma: no cover


def _spine_name() -> str:
    return f"__dbt_features_spine_{uuid.uuid4().hex[:12]}"


class DuckDBWarehouse(Warehouse):
    adapter_type = "duckdb"
    dialect = "duckdb"

    def __init__(self, target: str, credentials: Any) -> None:
        super().__init__(target)
        path = str(credentials.path)
        if path == ":memory:" or path.startswith("md:") or "://" in path:
            raise WarehouseError(
                f"target {target!r} uses DuckDB path {path!r}: dbt-features reads the feature "
                "tables from a DuckDB file; set `path:` in profiles.yml to a file."
            )
        resolved = Path(path).expanduser().resolve()
        if not resolved.is_file():
            raise WarehouseError(
                f"DuckDB file {resolved} of target {target!r} does not exist: run `dbt run` "
                "first (a relative `path:` in profiles.yml is relative to the directory dbt runs "
                "in, so run dbt-features from there too)."
            )
        self.con = _connect_duckdb(resolved)
        # Timestamps with time zone are read and compared in UTC (this session only: the
        # database may be shared with a connection of the user's in this process).
        self.con.sql("SET SESSION TimeZone = 'UTC'")
        self.database = credentials.database

    def close(self) -> None:
        self.con.close()

    def interrupt(self) -> None:
        self.con.interrupt()

    def _describe_params(self, relation: Relation) -> list[Any]:
        return [relation.schema or "main", relation.identifier]

    def arrow(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        import duckdb

        try:
            return self.con.sql(sql, params=params or None).to_arrow_table()
        except duckdb.Error as exc:
            raise WarehouseError(f"DuckDB query failed: {exc}") from exc

    def batches(self, sql: str, batch_size: int = 100_000) -> Iterator[pa.RecordBatch]:
        import duckdb

        try:
            reader = self.con.sql(sql).to_arrow_reader(batch_size)
            yield from reader
        except (duckdb.Error, OSError) as exc:
            # An error met while streaming (running out of memory, above all) reaches us
            # through Arrow's reader, as an OSError carrying DuckDB's message.
            raise WarehouseError(f"DuckDB query failed: {exc}") from exc

    @contextmanager
    def spine(self, table: pa.Table) -> Iterator[exp.Table]:
        name = _spine_name()
        self.con.register(name, table)
        try:
            yield exp.table_(exp.to_identifier(name, quoted=True))
        finally:
            self.con.unregister(name)


def _connect_duckdb(path: Path) -> Any:
    """A connection to the file, read-only unless this process already has it open.

    DuckDB shares one database per file within a process and refuses a connection with another
    configuration ("different configuration"): when the user (a notebook) holds the file open
    read-write, the only connection to be had is one like theirs; dbt-features only reads
    through it."""
    import duckdb

    try:
        try:
            return duckdb.connect(str(path), read_only=True)
        except duckdb.ConnectionException as exc:
            if "different configuration" not in str(exc):
                raise
            return duckdb.connect(str(path))
    except duckdb.Error as exc:
        text = " ".join(str(exc).split())
        if "different configuration" in text:
            text = ("this process already has it open with other settings (a connection of "
                    "yours?): close that connection, or open it with default settings")
        raise WarehouseError(
            duckdb_lock_message(text) or f"cannot open DuckDB file {path}: {text}."
        ) from exc


PG_SESSION = (("TimeZone", "UTC", 0), ("jit", "off", 110000))
"""Settings of our own PostgreSQL session: (name, value, the first server version that has it).
UTC, in which every time is compared here. No JIT compilation: PostgreSQL estimates a training
statement's final join by row number at tens of millions of rows for a 100k-row spine, and
compiles for 0.2-0.4 s what runs in about a second (bench_postgres, a spine model: 1.34 s
against 1.72 s with an index, 3.10 against 3.37 s without; the sync's queries within 5 %)."""


class PostgresWarehouse(Warehouse):
    adapter_type = "postgres"
    dialect = "postgres"

    def __init__(self, target: str, credentials: Any) -> None:
        import psycopg2

        super().__init__(target)
        kwargs: dict[str, Any] = {}
        if credentials.search_path:
            kwargs["options"] = "-c search_path={}".format(credentials.search_path.replace(" ", "\\ "))
        for name in ("sslmode", "sslcert", "sslkey", "sslrootcert"):
            if getattr(credentials, name, None):
                kwargs[name] = getattr(credentials, name)
        if credentials.keepalives_idle:
            kwargs["keepalives_idle"] = credentials.keepalives_idle
        try:
            self.con = psycopg2.connect(
                dbname=credentials.database,
                user=credentials.user,
                host=credentials.host,
                password=credentials.password,
                port=credentials.port,
                connect_timeout=min(credentials.connect_timeout or 5, 5),
                application_name="dbt-features",
                **kwargs,
            )
        except psycopg2.Error as exc:
            where = f"{credentials.user}@{credentials.host}:{credentials.port}/{credentials.database}"
            raise WarehouseError(
                f"cannot connect to PostgreSQL {where} (target {target!r}): "
                f"{str(exc).strip().splitlines()[0]}"
            ) from exc
        if credentials.role:
            with self.con.cursor() as cur:
                cur.execute("set role %s", [credentials.role])
        self.con.set_session(readonly=True, autocommit=True)
        with self.con.cursor() as cur:
            for name, value, since in PG_SESSION:
                if self.con.server_version >= since:
                    cur.execute("select set_config(%s, %s, false)", [name, value])
        register_strict_datetimes(self.con)

    def close(self) -> None:
        self.con.close()

    def interrupt(self) -> None:
        import psycopg2

        try:
            self.con.cancel()
        except psycopg2.Error:  # the connection is gone: the query has already failed
            pass

    def arrow(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        import psycopg2

        try:
            with self.con.cursor() as cur:
                cur.execute(sql, params or None)
                names = [d.name for d in cur.description]
                return rows_to_arrow(names, cur.fetchall())
        except psycopg2.Error as exc:
            raise _pg_error("query failed", exc) from exc

    def batches(self, sql: str, batch_size: int = 100_000) -> Iterator[pa.RecordBatch]:
        import psycopg2

        self.con.autocommit = False  # server-side cursors live in a transaction
        try:
            with self.con.cursor(name="dbt_features_stream") as cur:
                cur.itersize = batch_size
                cur.execute(sql)
                while True:
                    rows = cur.fetchmany(batch_size)
                    if not rows:
                        break
                    names = [d.name for d in cur.description]
                    yield from rows_to_arrow(names, rows).to_batches()
        except psycopg2.Error as exc:
            raise _pg_error("query failed", exc) from exc
        finally:
            self._end_transaction()

    def _end_transaction(self) -> None:
        """Roll back and return to autocommit; a connection the server dropped meanwhile is an
        error of its own unless one is already on its way (then that one is the news)."""
        import sys

        import psycopg2

        try:
            self.con.rollback()
            self.con.autocommit = True
        except psycopg2.Error as exc:
            if sys.exc_info()[1] is None:
                raise _pg_error("connection failed", exc) from exc

    @contextmanager
    def spine(self, table: pa.Table) -> Iterator[exp.Table]:
        """A temporary table in a transaction of its own: the session is read-only, so this
        one transaction is made read-write (temporary tables only) and rolled back at the end,
        which drops the table."""
        import psycopg2
        from psycopg2 import sql as pgsql
        import pyarrow.csv as pcsv

        name = _spine_name()
        target = exp.table_(exp.to_identifier(name, quoted=True))
        create = create_temporary_table(target, table.schema)
        buffer = io.BytesIO()
        pcsv.write_csv(table, buffer, pcsv.WriteOptions(include_header=False))
        buffer.seek(0)
        self.con.autocommit = False
        try:
            with self.con.cursor() as cur:
                cur.execute("set transaction read write")
                cur.execute(create.sql(dialect="postgres"))
                copy = pgsql.SQL("copy {} from stdin with (format csv)").format(pgsql.Identifier(name))
                cur.copy_expert(copy.as_string(self.con), buffer)
            yield target
        except psycopg2.Error as exc:
            raise _pg_error("could not load the spine", exc) from exc
        finally:
            self._end_transaction()


def _pg_error(what: str, exc: Exception) -> WarehouseError:
    """One line for a psycopg2 error; a connection lost (server stopped or restarted) says so."""
    import psycopg2

    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, (psycopg2.InterfaceError, psycopg2.OperationalError)) and (
        "closed" in text or "terminat" in text or "connection" in text
    ):
        return WarehouseError(
            f"lost the connection to PostgreSQL ({text}): check that the server is running, "
            "then run the command again (nothing was half-written)."
        )
    return WarehouseError(f"PostgreSQL {what}: {text}")


_SPINE_TYPES = {"int64": "BIGINT", "double": "DOUBLE", "bool": "BOOLEAN", "date": "DATE",
                "string": "TEXT"}


def spine_column_type(dtype: pa.DataType) -> exp.DataType:
    """The column type an uploaded spine's Arrow column gets (rendered per dialect)."""
    if pa.types.is_timestamp(dtype):
        # NTZ: a naive time stays naive (Spark's plain TIMESTAMP is an instant).
        return exp.DataType.build("TIMESTAMPTZ" if dtype.tz else "TIMESTAMPNTZ")
    return exp.DataType.build(_SPINE_TYPES.get(arrow_logical(dtype) or "", "TEXT"))


def create_temporary_table(target: exp.Table, schema: pa.Schema) -> exp.Expression:
    """``CREATE TEMPORARY TABLE`` with a column per field of ``schema``, for an uploaded spine."""
    return exp.Create(
        kind="TABLE",
        this=exp.Schema(this=target.copy(), expressions=[
            exp.ColumnDef(this=exp.to_identifier(f.name, quoted=True), kind=spine_column_type(f.type))
            for f in schema]),
        properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
    )


WAREHOUSES: dict[str, type[Warehouse]] = {
    cls.adapter_type: cls for cls in (DuckDBWarehouse, PostgresWarehouse)
}


WAREHOUSE_ENV = "DBT_FEATURES_WAREHOUSE"
"""``dbt``: query through dbt's adapter connection even where a native one exists."""


def open_warehouse(project: Project) -> Warehouse:
    """Connect to the selected target with dbt's own credentials for it: natively for DuckDB
    and PostgreSQL, through dbt's adapter connection for any other adapter
    (``dbt_connection``)."""
    import os

    adapter_type, credentials = load_credentials(project)
    choice = os.environ.get(WAREHOUSE_ENV, "")
    if choice not in ("", "native", "dbt"):
        raise WarehouseError(f"{WAREHOUSE_ENV}={choice!r}: use `native` (the default) or `dbt`.")
    cls = WAREHOUSES.get(adapter_type)
    if cls is None or choice == "dbt":
        from .dbt_connection import DbtConnectionWarehouse

        return DbtConnectionWarehouse(target_name(project), adapter_type, credentials)
    return cls(target_name(project), credentials)  # type: ignore[call-arg]
