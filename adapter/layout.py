"""The key layout of the online store (``P`` is the configured key prefix, ``V`` a feature
view, ``G`` a generation number, ``B`` the generation's bucket count)::

    P:V:gen         string: the current generation id ``G.TAG`` (published atomically with
                    the meta hash)
    P:V:meta        hash: current generation ``gen``/``gen_id`` and its ``schema`` (blob
                    format and ``buckets``), watermark, last sync, entity count, definition
                    fingerprint, ``pending``/``retired`` generations
    P:V:lock        the sync lock (JSON of the holder), with an expiry
    P:V:G:b         hash, one per bucket ``b`` in ``0..B-1``: field = the entity's ``FIELD``,
                    value = its blob (``codec``); the hash expires at the latest event time +
                    ttl of its entries
    P:@served_log   stream: the served-value log (``served_log``), with
                    ``P:@served_log:generations`` (hash), ``P:@served_log:stats`` (hash) and
                    ``P:@served_log:export_lock``

On a Redis Cluster the first three are ``{P:V}:gen``, ``{P:V}:meta`` and ``{P:V}:lock`` (one
hash slot per view; ``cluster`` says why), and the served log's keys share the slot of
``{P:@served_log}``.

An entity's bucket and field (``locate``, and ``encoder.locate_batch`` for whole batches):

* a single integer key ``k``: bucket ``k mod B``, field ``k div B`` in decimal (floor
  division, so negative keys work and ``k = field * B + bucket``);
* anything else (a string key, composite keys): bucket ``crc32(ENTITY) mod B``, field
  ``ENTITY``, where ``ENTITY`` is the key as text; composite keys join their parts with ``:``
  after escaping ``\\`` and ``:``.

Why buckets: a string key per entity costs Redis ~60 bytes of its own (key, object, dict and
expiry entries) besides the value: 184 bytes for 10 doubles. A field of a hash that holds
~100 entities costs a dict entry, the field and the value: ~138 bytes. ``B`` is chosen at each
full refresh from the entity count (``bucket_count``: ~112 entities per hash, so a hash's
table has 128 slots and a hash of small values stays a listpack, Redis's compact encoding up
to 128 entries) and is a prime, so ids in strides still spread evenly. Incremental syncs keep
``B``; new entities grow the buckets until the next full refresh re-sizes them. The integer
field is the quotient so that it stays short (at most 6 digits fits Redis's smallest field
allocation).

A full refresh writes generation G+1 beside G and switches ``gen`` in one step, so readers
see one complete snapshot or the other: a read is one script call that returns the views'
``P:V:gen`` and their entities' fields of the generations it last saw; if a ``P:V:gen``
moved, it reads again with the new one.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Sequence

PER_BUCKET = 112
"""Entities per bucket a full refresh aims at (see the module docstring)."""


@dataclass(frozen=True)
class Keys:
    """Key names of one key prefix."""

    prefix: str
    tagged: bool = False
    """On a Redis Cluster: a view's meta, gen and lock keys share the hash tag ``{P:V}``
    (one slot, for the publish step's script); see ``cluster``."""

    def meta(self, view: str) -> str:
        return self._view_key(view, "meta")

    def current(self, view: str) -> str:
        """A string key holding the current generation (read in the same call as values)."""
        return self._view_key(view, "gen")

    def lock(self, view: str) -> str:
        return self._view_key(view, "lock")

    def served_log(self) -> str:
        """The served-value log, a stream (``served_log``); ``@`` is in no dbt model name."""
        return self._log_key("")

    def served_generations(self) -> str:
        """What decoding the served log needs of each generation it names (a hash)."""
        return self._log_key(":generations")

    def served_stats(self) -> str:
        """Entries exports deleted (a hash; ``served_stats`` says why)."""
        return self._log_key(":stats")

    def served_export_lock(self) -> str:
        """Held by a running ``served export`` (a string with an expiry)."""
        return self._log_key(":export_lock")

    def _log_key(self, suffix: str) -> str:
        base = f"{self.prefix}:@served_log"
        return f"{{{base}}}{suffix}" if self.tagged else base + suffix

    def _view_key(self, view: str, name: str) -> str:
        if self.tagged:
            return f"{{{self.prefix}:{view}}}:{name}"
        return f"{self.prefix}:{view}:{name}"

    def generation(self, view: str, gen: int | str) -> str:
        """The prefix of every bucket key of one generation of a view."""
        return f"{self.prefix}:{view}:{gen}:"

    def bucket(self, view: str, gen: int | str, bucket: int) -> str:
        return f"{self.prefix}:{view}:{gen}:{bucket}"

    def generation_pattern(self, view: str, gen: int | str) -> str:
        """A SCAN MATCH pattern for one generation (glob characters of the prefix escaped)."""
        return _glob_escape(self.generation(view, gen)) + "*"


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def bucket_count(entities: int) -> int:
    """The number of buckets for a generation of ``entities`` entities: the smallest prime
    at or above ``entities / PER_BUCKET`` (at least 1)."""
    wanted = -(-max(entities, 0) // PER_BUCKET)
    if wanted <= 2:
        return max(wanted, 1)
    candidate = wanted
    while not _is_prime(candidate):
        candidate += 1
    return candidate


def _is_prime(n: int) -> bool:
    if n % 2 == 0:
        return n == 2
    f = 3
    while f * f <= n:
        if n % f == 0:
            return False
        f += 2
    return True


def integer_keyed(key_dtypes: Sequence[str]) -> bool:
    """A single integer join key: bucketed by value, its field the quotient."""
    return len(key_dtypes) == 1 and key_dtypes[0] == "int64"


def locate(values: Sequence[Any], key_dtypes: Sequence[str], buckets: int) -> tuple[int, bytes]:
    """``(bucket, field)`` of one entity's (already type-checked) join-key values."""
    if integer_keyed(key_dtypes):
        quotient, bucket = divmod(values[0], buckets)
        return bucket, str(quotient).encode()
    field = entity_suffix(values).encode()
    return zlib.crc32(field) % buckets, field


def parse_field(field: bytes | str, bucket: int, key_dtypes: Sequence[str],
                buckets: int) -> tuple[Any, ...]:
    """The join-key values of an entity from its bucket and field (the inverse of ``locate``)."""
    text = field.decode() if isinstance(field, bytes) else field
    if integer_keyed(key_dtypes):
        return (int(text) * buckets + bucket,)
    return parse_entity_suffix(text, key_dtypes)


def entity_suffix(values: Sequence[Any]) -> str:
    """The ``ENTITY`` text of one entity's (already type-checked) join-key values."""
    if len(values) == 1:
        return str(values[0])
    return ":".join(_escape(str(v)) for v in values)


def parse_entity_suffix(suffix: str, dtypes: Sequence[str]) -> tuple[Any, ...]:
    """The join-key values of an ``ENTITY`` text (the inverse of ``entity_suffix``)."""
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
