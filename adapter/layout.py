"""The key layout of the online store (``P`` is the configured key prefix, ``V`` a feature
view, ``G`` a generation id)::

    P:V:gen         string: the current generation G (published atomically with the meta hash)
    P:V:meta        hash: current generation ``gen`` and its ``schema``, watermark, last sync,
                    key count, definition fingerprint, ``pending``/``retired`` generations
    P:V:lock        the sync lock (JSON of the holder), with an expiry
    P:V:G:ENTITY    one value per (view, entity): a compact blob (``codec``), expiring at event
                    time + ttl

A full refresh writes generation G+1 beside G and switches ``gen`` in one step, so readers
see one complete snapshot or the other: a read is one MGET of ``P:V:gen`` and the entity keys
of the generation it last saw; if ``P:V:gen`` moved, it reads again with the new one.
``ENTITY`` is the join-key value (decimal for integers, the string itself for strings);
composite keys join their parts with ``:`` after escaping ``\\`` and ``:``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence


@dataclass(frozen=True)
class Keys:
    """Key names of one key prefix."""

    prefix: str

    def view_base(self, view: str) -> str:
        return f"{self.prefix}:{view}:"

    def meta(self, view: str) -> str:
        return f"{self.prefix}:{view}:meta"

    def current(self, view: str) -> str:
        """A string key holding the current generation (read in the same MGET as values)."""
        return f"{self.prefix}:{view}:gen"

    def lock(self, view: str) -> str:
        return f"{self.prefix}:{view}:lock"

    def generation(self, view: str, gen: int | str) -> str:
        """The prefix of every entity key of one generation of a view."""
        return f"{self.prefix}:{view}:{gen}:"

    def generation_pattern(self, view: str, gen: int | str) -> str:
        """A SCAN MATCH pattern for one generation (glob characters of the prefix escaped)."""
        return _glob_escape(self.generation(view, gen)) + "*"


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def entity_suffix(values: Sequence[Any]) -> str:
    """The ``ENTITY`` part of a key for one entity's (already type-checked) join-key values."""
    if len(values) == 1:
        return str(values[0])
    return ":".join(_escape(str(v)) for v in values)


def parse_entity_suffix(suffix: str, dtypes: Sequence[str]) -> tuple[Any, ...]:
    """The join-key values of a key's ``ENTITY`` part (the inverse of ``entity_suffix``)."""
    parts = [suffix] if len(dtypes) == 1 else _split_escaped(suffix)
    return tuple(int(p) if t == "int64" else p for p, t in zip(parts, dtypes))


def _split_escaped(text: str) -> list[str]:
    parts, current, chars = [], [], iter(text)
    for char in chars:
        if char == "\\":
            current.append(next(chars, ""))
        elif char == ":":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    return [*parts, "".join(current)]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(":", "\\:")
