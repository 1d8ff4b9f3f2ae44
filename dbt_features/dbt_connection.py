"""Any dbt adapter, through the connection dbt itself opens for the target.

The adapter's own ``ConnectionManager.open`` (of the plugin dbt loads for the profile's type)
makes the connection from the profile's credentials, rendered by dbt: nothing is configured
twice, and whatever the adapter supports (authentication methods, session settings) works here
as in ``dbt run``. Queries, in the adapter's sqlglot dialect, run on its DB-API cursor; rows
become Arrow (``pg_values.rows_to_arrow``), in batches when streamed (``fetchmany``); a
dbt-spark ``session`` cursor's DataFrame is read as Arrow instead (``spark_read``). What
differs between engines, how to list a relation's columns and how to hold an uploaded spine, is
a small table keyed by dialect. DuckDB and PostgreSQL keep their native connections (faster:
Arrow straight from DuckDB, a server-side cursor on PostgreSQL) unless
``DBT_FEATURES_WAREHOUSE=dbt`` asks for this one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa
from sqlglot import exp

from .errors import WarehouseError
from .pg_values import rows_to_arrow
from .relation import Relation
from .pit import relation_table
from .spark_read import frame_batches, frame_table, observed_frame, observed_values, session_frame
from .warehouse import (Observed, Warehouse, _spine_name, create_temporary_table, dialect_for,
                        spine_column_type)

SPINE_CHUNK = 1_000
"""Spine rows per ``INSERT`` statement (values inlined as literals: the DB-API parameter style
differs between drivers, a literal does not)."""


def _describe_information_schema(relation: Relation) -> exp.Expression:
    conditions = [exp.EQ(this=exp.column("table_name"), expression=exp.Literal.string(relation.identifier))]
    if relation.schema:
        conditions.append(exp.EQ(this=exp.column("table_schema"),
                                 expression=exp.Literal.string(relation.schema)))
    return (exp.select("column_name", "data_type").from_("information_schema.columns")
            .where(exp.and_(*conditions)).order_by("ordinal_position"))


def _describe_table(relation: Relation) -> exp.Expression:
    return exp.Describe(this=relation_table(relation), kind="TABLE")


DESCRIBE: dict[str, Callable[[Relation], exp.Expression]] = {
    "spark": _describe_table,
    "databricks": _describe_table,
}
"""Dialect -> the query listing a relation's columns as (name, type) rows, in order; the
others answer ``information_schema.columns``. Spark's ``DESCRIBE TABLE`` ends its columns at
an empty or ``#`` row (partitioning details follow)."""

SPINE_HOLDERS = {"postgres": "TABLE", "duckdb": "TABLE", "redshift": "TABLE",
                 "snowflake": "TABLE", "spark": "VIEW", "databricks": "VIEW"}
"""How a session holds an uploaded spine: a ``TEMPORARY TABLE`` filled by ``INSERT``s, or (Spark,
Databricks: no temporary tables) a ``TEMPORARY VIEW`` over ``VALUES``, one statement, meant
for the spines of ``verify`` (a sample of keys); a big spine belongs in a model there.
Elsewhere a spine is a dbt model or source (a file spine is a usage error that says so)."""


INSTANT_TYPES = {"spark": {"timestamp"}, "databricks": {"timestamp"}}
"""Dialect -> the cursor's type names of columns holding an instant that the driver hands over
as a naive datetime (Spark's ``TIMESTAMP`` is local-time-zone aware; the session is in UTC):
they become UTC-aware Arrow timestamps, as a ``timestamptz`` is on the native paths."""

SESSION_SETUP = {
    "postgres": "SET TIME ZONE 'UTC'",
    "duckdb": "SET TimeZone = 'UTC'",
    "redshift": "SET TIME ZONE 'UTC'",
    "snowflake": "ALTER SESSION SET TIMEZONE = 'UTC'",
    "spark": "SET TIME ZONE 'UTC'",
    "databricks": "SET TIME ZONE 'UTC'",
    "trino": "SET TIME ZONE 'UTC'",
}
"""Dialect -> the statement making the session compare and read times in UTC, as the native
connections do (the time literals of training sets and syncs are UTC)."""


class DbtConnectionWarehouse(Warehouse):
    """The target's warehouse through dbt's own adapter connection."""

    def __init__(self, target: str, adapter_type: str, credentials: Any) -> None:
        super().__init__(target)
        self.adapter_type = adapter_type  # type: ignore[misc]
        self.dialect = dialect_for(adapter_type)  # type: ignore[misc]
        self._manager, self.connection = _open(target, adapter_type, credentials)
        self._spark_session = _is_spark_session(adapter_type, credentials)
        self.observes = self._spark_session
        self._observed: dict[str, Any] = {}
        """The last observed read's DataFrame (its plan holds the metrics), by name: the last
        only, so that a long session of syncs keeps no plan of an earlier one."""
        self.handle = self.connection.handle
        if self.dialect in SESSION_SETUP:
            with self._cursor(SESSION_SETUP[self.dialect]):
                pass

    def close(self) -> None:
        try:
            self._manager.close(self.connection)
        except Exception as exc:  # noqa: BLE001 - a driver's own error type, wrapped here
            raise WarehouseError(f"closing the {self.adapter_type} connection of target "
                                 f"{self.target!r} failed: {_one_line(exc)}") from exc

    def interrupt(self) -> None:
        cancel = getattr(self.handle, "cancel", None) or getattr(self.handle.cursor(), "interrupt", None)
        if cancel is not None:
            try:
                cancel()
            except Exception:  # noqa: BLE001 - nothing running, or the connection is gone
                pass

    def describe(self, relation: Relation) -> dict[str, str] | None:
        query = DESCRIBE.get(self.dialect, _describe_information_schema)(relation)
        try:
            table = self.arrow(query.sql(dialect=self.dialect))
        except WarehouseError:
            if self.dialect in DESCRIBE:  # DESCRIBE of a missing table is an error there
                return None
            raise
        columns: dict[str, str] = {}
        for name, data_type in zip(*(table.column(i).to_pylist() for i in range(2))):
            if not name or str(name).startswith("#"):
                break
            columns[str(name)] = str(data_type)
        return columns or None

    def arrow(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        if params:
            raise WarehouseError("dbt's adapter connections take no query parameters here")
        with self._cursor(sql) as cur:
            frame = session_frame(cur) if self._spark_session else None
            try:
                if frame is not None:
                    return frame_table(frame)
                rows = list(cur.fetchall() or [])
            except Exception as exc:  # noqa: BLE001 - a driver's own error type, wrapped here
                raise self._failed(exc) from exc
            return self._table(cur, rows)

    def batches(self, sql: str, batch_size: int = 100_000) -> Iterator[pa.RecordBatch]:
        with self._cursor(sql) as cur:
            frame = session_frame(cur) if self._spark_session else None
            if frame is not None:
                yield from self._wrapped(frame_batches(frame, batch_size))
                return
            for rows in self._wrapped(_row_chunks(cur, batch_size)):
                if rows:
                    yield from self._table(cur, rows).to_batches()

    def observed_batches(self, sql: str, observed: Observed,
                         batch_size: int = 100_000) -> Iterator[pa.RecordBatch]:
        if not self._spark_session:
            raise WarehouseError(f"{self.adapter_type} cannot observe a read here")
        from pyspark.sql import SparkSession

        spark = SparkSession.builder.getOrCreate()  # the session dbt's connection runs in
        try:
            frame = observed_frame(spark, sql, observed)
            self._observed = {observed.name: frame}
        except Exception as exc:  # noqa: BLE001 - Spark's own error types, wrapped here
            raise self._failed(exc) from exc
        try:
            yield from self._wrapped(frame_batches(frame, batch_size))
        finally:  # the frame keeps its plan: its metrics stay readable
            _quietly(lambda: spark.catalog.dropTempView(observed.name))

    def observed_values(self, observed: Observed) -> dict[str, Any] | None:
        frame = self._observed.get(observed.name)
        return None if frame is None else observed_values(frame, observed)

    def _wrapped(self, items: Iterator[Any]) -> Iterator[Any]:
        """``items``, a driver's error while making the next one wrapped."""
        while True:
            try:
                item = next(items)
            except StopIteration:
                return
            except Exception as exc:  # noqa: BLE001 - a driver's own error type, wrapped here
                raise self._failed(exc) from exc
            yield item

    @contextmanager
    def spine(self, table: pa.Table) -> Iterator[exp.Table]:
        kind = SPINE_HOLDERS.get(self.dialect)
        if kind is None:
            raise WarehouseError(
                f"target {self.target!r} ({self.adapter_type}): dbt-features cannot upload a "
                "spine file there; make the spine a dbt model or source and pass its name.")
        target = exp.table_(exp.to_identifier(_spine_name(), quoted=True))
        if kind == "VIEW":
            self._run([_spine_view(target, table)])
        else:
            self._run([create_temporary_table(target, table.schema),
                       *(_insert_spine(target, chunk) for chunk in table.to_batches(SPINE_CHUNK))])
        try:
            yield target
        finally:
            self._run([exp.Drop(tables=[target.copy()], kind=kind, exists=True)])

    # -- cursor handling -----------------------------------------------------------------

    def _table(self, cur: Any, rows: list) -> pa.Table:
        table = rows_to_arrow(_names(cur), rows)
        instants = INSTANT_TYPES.get(self.dialect, set())
        for i, column in enumerate(cur.description or ()):
            field = table.schema.field(i)
            if (str(column[1]).lower() in instants and pa.types.is_timestamp(field.type)
                    and field.type.tz is None):
                table = table.set_column(i, field.name, table.column(i).cast(
                    pa.timestamp(field.type.unit, tz="UTC")))
        return table

    @contextmanager
    def _cursor(self, sql: str) -> Iterator[Any]:
        """A cursor that ran ``sql``. It is left to the garbage collector, not closed: some
        adapters hand out their connection's one cursor (dbt-duckdb), whose ``close`` closes
        the connection."""
        cur = self.handle.cursor()
        try:
            try:
                cur.execute(sql)
            except Exception as exc:  # noqa: BLE001 - a driver's own error type, wrapped here
                raise self._failed(exc) from exc
            yield cur
        finally:
            self._end_transaction()

    def _run(self, statements: list[exp.Expression]) -> None:
        for statement in statements:
            with self._cursor(statement.sql(dialect=self.dialect)):
                pass

    def _end_transaction(self) -> None:
        """Commit what a driver opened implicitly (PostgreSQL's psycopg2 does): an open read
        transaction would hold locks that block the next ``dbt run``."""
        commit = getattr(self.handle, "commit", None)
        if commit is not None:
            _quietly(commit)

    def _failed(self, exc: BaseException) -> WarehouseError:
        return WarehouseError(f"{self.adapter_type} query failed (target {self.target!r}, through "
                              f"dbt's connection): {_one_line(exc)}")


def _open(target: str, adapter_type: str, credentials: Any) -> tuple[Any, Any]:
    from dbt.adapters.contracts.connection import Connection, ConnectionState
    from dbt.adapters.factory import FACTORY, load_plugin

    try:
        load_plugin(adapter_type)
        manager = FACTORY.get_adapter_class_by_name(adapter_type).ConnectionManager
        credentials = _quiet_spark_session(adapter_type, credentials)
        connection = Connection(type=adapter_type, name="dbt_features", credentials=credentials,
                                state=ConnectionState.INIT, transaction_open=False, handle=None)
        return manager, manager.open(connection)
    except Exception as exc:  # noqa: BLE001 - any adapter's own error type, wrapped here
        raise WarehouseError(f"cannot connect to target {target!r} through dbt's {adapter_type} "
                             f"adapter: {_one_line(exc)}") from exc


SPARK_QUIET = {"spark.ui.showConsoleProgress": "false"}
"""Session settings a Spark started in this process gets unless the profile sets them: no
progress bars on stderr (the command's own output is what the user asked for)."""

SPARK_LOG4J = """\
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = stderr
appender.console.type = Console
appender.console.name = stderr
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
logger.gateway.name = org.apache.spark.api.python.PythonGatewayServer
logger.gateway.level = error
"""
"""Log4j 2 settings for the Spark driver's JVM, unless the profile's ``spark.driver.
extraJavaOptions`` name a Log4j configuration of their own: errors only, from the JVM's start
(``spark.log.level`` would apply only once the context runs, after the start-up warnings). The
``gateway`` logger (PySpark's JVM entry point) at the root's level keeps Spark from announcing
a default level of its own, as it does for a shell."""


def _quiet_spark_session(adapter_type: str, credentials: Any) -> Any:
    """The credentials of a dbt-spark ``session`` target, with ``SPARK_QUIET`` and ``SPARK_LOG4J``
    added where the profile's ``server_side_parameters`` say nothing of them; any other
    target's unchanged. PySpark's warning about the installed pandas is silenced too: it
    concerns pandas-on-Spark, which dbt-features does not use."""
    if adapter_type != "spark" or str(getattr(credentials, "method", "")) != "session":
        return credentials
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas",
                            category=FutureWarning)
    parameters = {**SPARK_QUIET, **credentials.server_side_parameters}
    java_options = parameters.get("spark.driver.extraJavaOptions", "")
    log4j = None if "log4j" in java_options else _log4j_file()
    if log4j is not None:
        parameters["spark.driver.extraJavaOptions"] = (
            f"{java_options} -Dlog4j2.configurationFile={log4j}".strip())
    return dataclasses.replace(credentials, server_side_parameters=parameters)


def _log4j_file() -> Path | None:
    """``SPARK_LOG4J`` as a file the JVM can read (named by its content, written once); None
    where the temporary directory is not writable: Spark then logs as it would anyway."""
    digest = hashlib.sha256(SPARK_LOG4J.encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"dbt_features_spark_log4j2_{digest}.properties"
    try:
        if not path.exists():
            partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            partial.write_text(SPARK_LOG4J)
            partial.replace(path)
    except OSError:
        return None
    return path


def _is_spark_session(adapter_type: str, credentials: Any) -> bool:
    return adapter_type == "spark" and str(getattr(credentials, "method", "")) == "session"


def _row_chunks(cur: Any, size: int) -> Iterator[list]:
    """The rows of an executed cursor, ``size`` at a time (all at once without ``fetchmany``)."""
    if not hasattr(cur, "fetchmany"):
        yield list(cur.fetchall() or [])
        return
    while chunk := list(cur.fetchmany(size)):
        yield chunk


def _names(cur: Any) -> list[str]:
    return [str(d[0]) for d in cur.description or ()]


def _quietly(action: Callable[[], Any]) -> None:
    try:
        action()
    except Exception:  # noqa: BLE001 - cleanup after the news, which is already on its way
        pass


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:500] or type(exc).__name__


def _rows(batch: pa.RecordBatch | pa.Table) -> list[exp.Expression]:
    """Each row as a tuple of literals, each cast to its column's type (a NULL too, so that a
    ``VALUES`` list has a type for every column)."""
    types = [spine_column_type(f.type) for f in batch.schema]
    return [exp.Tuple(expressions=[_literal(v, t) for v, t in zip(row.values(), types)])
            for row in batch.to_pylist()]


def _insert_spine(target: exp.Table, batch: pa.RecordBatch) -> exp.Expression:
    return exp.Insert(this=target.copy(), expression=exp.Values(expressions=_rows(batch)))


def _spine_view(target: exp.Table, table: pa.Table) -> exp.Expression:
    """``CREATE TEMPORARY VIEW`` over the rows as ``VALUES`` (none: typed NULLs, no row)."""
    if table.num_rows:
        alias = exp.TableAlias(this=exp.to_identifier("spine"), columns=[
            exp.to_identifier(name, quoted=True) for name in table.column_names])
        query = exp.select("*").from_(exp.Values(expressions=_rows(table), alias=alias))
    else:
        query = exp.select(*(exp.alias_(exp.cast(exp.Null(), spine_column_type(f.type)), f.name, quoted=True)
                             for f in table.schema)).where(exp.false())
    return exp.Create(kind="VIEW", this=target.copy(), expression=query,
                      properties=exp.Properties(expressions=[exp.TemporaryProperty()]))


def _literal(value: Any, kind: exp.DataType) -> exp.Expression:
    """A spine value as a SQL literal of its column's type (timestamps as ISO text, cast)."""
    if value is None:
        return exp.cast(exp.Null(), kind.copy())
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, (int, float)):
        return exp.Literal.number(repr(value))
    if hasattr(value, "isoformat"):
        return exp.cast(exp.Literal.string(value.isoformat()), kind.copy())
    return exp.Literal.string(str(value))
