"""``--entity customer_id=42,merchant_id=7`` to entity rows with the registry's key types."""

from __future__ import annotations

import re
from typing import Any

from ..errors import UsageError
from ..registry import Registry, is_unicode

_INTEGER = re.compile(r"[+-]?[0-9]+")
"""An integer key as typed: ASCII digits only (Python's int() also takes '4_2' and other
scripts' digits, which are not how a key is written anywhere else)."""
_INT64 = range(-(1 << 63), 1 << 63)


def parse_entities(given: tuple[str, ...]) -> list[dict[str, str]]:
    """``--entity customer_id=42,merchant_id=7`` (one option per entity row) to dicts of
    strings; ``typed_entities`` converts them to the registry's key types."""
    rows = []
    for text in given:
        if not is_unicode(text):
            raise UsageError(
                f"--entity {_printable(text)}: not valid UTF-8 text: give keys as UTF-8 (check "
                "the terminal's or the script's encoding)."
            )
        row: dict[str, str] = {}
        for part in text.split(","):
            name, sep, value = part.partition("=")
            if not sep or not name.strip():
                raise UsageError(
                    f"--entity {text!r} is not KEY=VALUE[,KEY=VALUE]: write e.g. "
                    "--entity customer_id=42 (one --entity per entity)."
                )
            row[name.strip()] = value.strip()
        rows.append(row)
    if not rows:
        raise UsageError("name at least one entity: --entity customer_id=42.")
    return rows


def typed_entities(registry: Registry, refs: list[str],
                   rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Convert command-line key values to the types the registry declares for them."""
    types: dict[str, str] = {}
    for view, _feature in registry.resolve(refs):
        for key in view.entity.join_keys:
            types[key.name] = key.dtype
    out = []
    for row in rows:
        typed: dict[str, Any] = {}
        for name, value in row.items():
            if types.get(name) == "int64":
                if not _INTEGER.fullmatch(value) or int(value) not in _INT64:
                    raise UsageError(
                        f"--entity {name}={value}: {name} is an integer key (int64); give a "
                        f"whole number in ASCII digits from -2^63 to 2^63-1, e.g. {name}=42."
                    )
                typed[name] = int(value)
            else:
                typed[name] = value
        out.append(typed)
    return out


def _printable(text: str) -> str:
    """``text`` for a message, bytes that were not UTF-8 written as ``\\xff``."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace")
