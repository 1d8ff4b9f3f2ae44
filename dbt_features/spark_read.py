"""A dbt-spark ``session`` query's result as Arrow, without a Python row on the way.

dbt-spark's ``session`` cursor keeps the query's DataFrame and hands out rows by ``collect()``:
a Python object per row, then Arrow again (measured on the Spark benchmark: the read of a
million-row training set took about 13 s of its 120 that way). Here the same DataFrame is read
by Spark's own Arrow conversion instead: whole (``toArrow()``) where the result is wanted
whole, or partition after partition (Spark's local iterator over Arrow batches, the next
partition computed while this one is used) where it streams, so the driver holds about two
partitions at a time, never the whole result. Values come as the generic path gives them:
DECIMAL as float64 (``pg_values.rows_to_arrow``), ``TIMESTAMP`` as UTC-aware, every column
nullable.
"""

from __future__ import annotations

from typing import Any, Iterator

import pyarrow as pa

from .warehouse import Observed


def session_frame(cursor: Any) -> Any | None:
    """The DataFrame behind an executed dbt-spark ``session`` cursor (its connection wrapper
    holds the cursor, which holds the DataFrame), or None for any other cursor."""
    inner = getattr(cursor, "_cursor", cursor)
    frame = getattr(inner, "_df", None)
    return frame if frame is not None and hasattr(frame, "toArrow") else None


def frame_table(frame: Any) -> pa.Table:
    """The whole result, in its order."""
    table = frame.toArrow()
    return table.cast(_generic(table.schema))


def frame_batches(frame: Any, batch_size: int) -> Iterator[pa.RecordBatch]:
    """The result a partition at a time, in batches of at most ``batch_size`` rows."""
    from pyspark.serializers import NoOpSerializer
    from pyspark.sql.pandas.types import to_arrow_schema
    from pyspark.util import _local_iterator_from_socket

    spark = frame.sparkSession
    large = spark.conf.get("spark.sql.execution.arrow.useLargeVarTypes", "false") == "true"
    schema = to_arrow_schema(frame.schema, error_on_duplicated_field_names_in_struct=True,
                             timezone="UTC", prefers_large_types=large)
    wanted = _generic(schema)
    # Serialized Arrow record batches (no schema: ``schema`` is theirs), a partition per job.
    batches = frame._jdf.toArrowBatchRdd(batch_size, "UTC", True, large)
    served = spark.sparkContext._jvm.org.apache.spark.api.python.PythonRDD.toLocalIteratorAndServe(
        batches, True)
    for payload in _local_iterator_from_socket(served, NoOpSerializer()):
        batch = pa.ipc.read_record_batch(pa.py_buffer(payload), schema)
        yield pa.RecordBatch.from_arrays(
            [column.cast(field.type) for column, field in zip(batch.columns, wanted)],
            schema=wanted)


def observed_frame(spark: Any, sql: str, observed: Observed) -> Any:
    """``sql`` as a DataFrame reading ``observed.source`` (a temporary view named
    ``observed.name``) with Spark's observed metrics: aggregates computed by the tasks that
    scan it, no other pass. The source is repartitioned by ``observed.keys`` (the window the
    query runs over them reuses that exchange): every scan task has then finished, and the
    metrics are final, before the first row of the result is computed."""
    from pyspark.sql import functions as F

    source = spark.sql(observed.source).observe(
        observed.name, *(F.expr(text).alias(name) for name, text in observed.aggregates))
    keys = (F.col("`" + key.replace("`", "``") + "`") for key in observed.keys)
    source.repartition(*keys).createOrReplaceTempView(observed.name)
    return spark.sql(sql)


def observed_values(frame: Any, observed: Observed) -> dict[str, Any] | None:
    """The metrics ``observed_frame`` collects, by name (None until the scan has run)."""
    found = frame._jdf.queryExecution().observedMetrics().get(observed.name)
    if found.isEmpty():
        return None
    row = found.get()
    return {name: row.get(i) for i, (name, _) in enumerate(observed.aggregates)}


def _generic(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, _generic_type(f.type)) for f in schema])


def _generic_type(kind: pa.DataType) -> pa.DataType:
    if pa.types.is_decimal(kind):
        return pa.float64()
    if pa.types.is_timestamp(kind) and kind.tz is not None:
        return pa.timestamp(kind.unit, tz="UTC")
    return kind
