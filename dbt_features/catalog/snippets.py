""""How to use it": the ways to get one feature, as text to copy, each of which runs as shown
(a test runs them on the sample project): the Python API's ``get_training_set``, the
``training-set`` command, the ``dbt_features.training_set`` macro, and a ``curl`` to the feature
server. Each builds a one-row spine (or entity row) from the view's join keys with an example
value, as of now: the reader swaps in their own."""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..registry import Feature, FeatureView

DEFAULT_PORT = 6566
SPINE_TIMESTAMP = "event_timestamp"


@dataclass(frozen=True)
class Snippet:
    """One way to use a feature: ``kind`` is python, sh, sql or curl; ``file`` names where a
    snippet goes when it is a file of the dbt project (the macro's models)."""

    kind: str
    title: str
    code: str
    file: str | None = None


def example_value(dtype: str) -> int | str | float | bool:
    """A join-key value of the key's logical type, for the snippets' one-row spine."""
    if dtype.startswith(("int", "uint")):
        return 1
    if dtype in ("double", "float", "decimal"):
        return 1.0
    if dtype == "bool":
        return True
    return "1"


def snippets(view: FeatureView, feature: Feature) -> tuple[Snippet, ...]:
    ref = f"{view.name}:{feature.name}"
    keys = {k.name: example_value(k.dtype) for k in view.entity.join_keys}
    found = [_python(ref, feature, keys), _cli(view, ref, keys), *_macro(view, ref, keys)]
    if view.online:
        found.append(_curl(ref, keys))
    return tuple(found)


def _python(ref: str, feature: Feature, keys: dict[str, object]) -> Snippet:
    columns = ", ".join(f"{k!r}: [{v!r}]" for k, v in keys.items())
    code = (
        "# in the dbt project's folder\n"
        "from datetime import datetime, timezone\n\n"
        "import pyarrow as pa\n"
        "from dbt_features import FeatureStore\n\n"
        f"spine = pa.table({{{columns}, {SPINE_TIMESTAMP!r}: [datetime.now(timezone.utc)]}})\n"
        f"training = FeatureStore().get_training_set(spine, [{ref!r}])\n"
        f"print(training.column({feature.name!r}).to_pylist())\n"
    )
    return Snippet("python", "Python: a point-in-time training set", code)


def _cli(view: FeatureView, ref: str, keys: dict[str, object]) -> Snippet:
    header = ",".join([*keys, SPINE_TIMESTAMP])
    row = ",".join(str(v) for v in keys.values())
    out = f"target/{view.name}__training.parquet"
    code = (
        f"printf '%s\\n' {_sh(header)} \"{row},$(date -u +%Y-%m-%dT%H:%M:%S)\" > spine.csv\n"
        f"dbt-features training-set --spine spine.csv --features {_sh(ref)} -o {out}\n"
    )
    return Snippet("sh", "Command line: the same training set, to a file", code)


def _macro(view: FeatureView, ref: str, keys: dict[str, object]) -> tuple[Snippet, ...]:
    spine_name = f"{view.name}_spine"
    columns = ",\n    ".join(f"{_sql_literal(v)} as {k}" for k, v in keys.items())
    spine = (f"select\n    {columns},\n"
             f"    cast(current_timestamp as timestamp) as {SPINE_TIMESTAMP}\n")
    training = (
        f"select * from {{{{ dbt_features.training_set(\n"
        f"    ref('{spine_name}'),\n    ['{ref}'],\n"
        f"    spine_timestamp='{SPINE_TIMESTAMP}'\n) }}}}\n"
    )
    return (
        Snippet("sql", "dbt: a spine model (your labels, in practice)", spine,
                f"models/{spine_name}.sql"),
        Snippet("sql", "dbt: the training set, built by `dbt run` with the macro", training,
                f"models/{view.name}_training.sql"),
    )


def _curl(ref: str, keys: dict[str, object]) -> Snippet:
    body = json.dumps({"features": [ref], "entities": {k: [v] for k, v in keys.items()}})
    code = (f"curl -s localhost:{DEFAULT_PORT}/get-online-features \\\n"
            f"  -d {_sh(body)}\n")
    return Snippet("curl", "HTTP: the online value, from `dbt-features serve`", code)


def _sql_literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def _sh(text: str) -> str:
    """Single-quoted for a POSIX shell."""
    return "'" + text.replace("'", "'\\''") + "'"
