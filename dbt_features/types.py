"""Logical feature types, derived from warehouse types through sqlglot.

Every warehouse spells its types differently (``double precision``, ``FLOAT8``, ``DOUBLE``); the
registry stores the warehouse's spelling *and* one logical type, which is what training sets and
the online store rely on. A type we cannot map is an error, never a guess.
"""

from __future__ import annotations

import pyarrow as pa
from sqlglot import exp
from sqlglot.errors import ParseError

LOGICAL_TYPES = ("int64", "double", "bool", "string", "timestamp", "date")

_T = exp.DataType.Type
_BY_SQLGLOT_TYPE: dict[exp.DataType.Type, str] = {}
for _name, _types in {
    "int64": ("TINYINT", "SMALLINT", "MEDIUMINT", "INT", "BIGINT", "UTINYINT", "USMALLINT",
              "UMEDIUMINT", "UINT", "UBIGINT", "SERIAL", "SMALLSERIAL", "BIGSERIAL"),
    "double": ("FLOAT", "DOUBLE", "DECIMAL", "BIGDECIMAL", "UDECIMAL",
               "DECIMAL32", "DECIMAL64", "DECIMAL128", "DECIMAL256"),
    "bool": ("BOOLEAN",),
    "string": ("VARCHAR", "NVARCHAR", "CHAR", "NCHAR", "TEXT", "NAME", "BPCHAR", "UUID",
               "MEDIUMTEXT", "LONGTEXT", "TINYTEXT", "ENUM"),
    "timestamp": ("TIMESTAMP", "TIMESTAMPTZ", "TIMESTAMPLTZ", "TIMESTAMPNTZ", "DATETIME",
                  "DATETIME2", "DATETIME64", "SMALLDATETIME", "TIMESTAMP_S", "TIMESTAMP_MS",
                  "TIMESTAMP_NS"),
    "date": ("DATE", "DATE32"),
}.items():
    for _t in _types:
        if hasattr(_T, _t):
            _BY_SQLGLOT_TYPE[getattr(_T, _t)] = _name

# Spellings sqlglot does not parse as types in some dialects.
_ALIASES = {
    "hugeint": "int64",
    "uhugeint": "int64",
    "int128": "int64",
    "timestamp with time zone": "timestamp",
    "timestamp without time zone": "timestamp",
    "character varying": "string",
    "string": "string",
}


def logical_type(data_type: str, dialect: str) -> str | None:
    """Map a warehouse type (as the warehouse or a YAML ``data_type`` spells it) to a logical type.

    Returns None when the type has no logical counterpart (arrays, structs, blobs, ...): the
    caller reports that, naming the column.
    """
    text = " ".join(data_type.strip().lower().split())
    if text in _ALIASES:
        return _ALIASES[text]
    try:
        parsed = exp.DataType.build(text, dialect=dialect)
    except (ParseError, ValueError):
        return None
    return _BY_SQLGLOT_TYPE.get(parsed.this)


def cast_hint(data_type: str) -> str:
    """What to do with a column whose type ``logical_type`` refuses."""
    if " ".join(data_type.lower().split()) in ("money", "smallmoney"):
        # PostgreSQL sends money as locale-formatted text ('$1,234.50'), not as a number.
        return "cast it to numeric in the model (e.g. `amount::numeric`)"
    return f"cast it to one of: {', '.join(LOGICAL_TYPES)}"


def is_temporal(dtype: str | None) -> bool:
    return dtype in ("timestamp", "date")


def arrow_logical(dtype: pa.DataType) -> str | None:
    """The logical type of an Arrow column (a spine's, or a result's); None if it has none."""
    if pa.types.is_integer(dtype):
        return "int64"
    if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "double"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype):
        return "string"
    if pa.types.is_dictionary(dtype):
        return arrow_logical(dtype.value_type)
    if pa.types.is_boolean(dtype):
        return "bool"
    if pa.types.is_timestamp(dtype):
        return "timestamp"
    if pa.types.is_date(dtype):
        return "date"
    return None
