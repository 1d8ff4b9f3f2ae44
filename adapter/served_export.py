"""The served-value log exported to Parquet files, ``<dir>/<view>/*.parquet``.

``export_served`` drains the stream (``served_log``) a chunk of entries at a time: each view's
file is written under a temporary name and renamed (a reader never sees half a file), and only
then are the chunk's entries deleted (``XDEL`` by id). A file is named after the stream ids of
its chunk's first and last entries (``<first>_<last>.parquet``); an entry whose id lies in the
range of a file already in its view's folder is not written again. So an export that stops
anywhere (before the rename: the entries are still in the stream; after it, before the
delete: they are exported again and found already written) loses nothing and writes nothing
twice. Exports take a lock in Redis: one runs at a time. Entries logged while it runs are left
for the next export.

The columns (a contract with the replay, ``verify --served``), in this order: ``request_time``,
``request_id``, the view's join keys, ``generation``, ``fingerprint``, ``status``,
``event_timestamp``, ``served_features`` (the features of the view the request asked for),
then every feature of the view in that generation, values as served (null unless present);
``served_decode`` builds them.
"""

from __future__ import annotations

import os
import re
import secrets
from bisect import bisect_right
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from dbt_features.errors import OnlineStoreError, UsageError

from .cluster import REDIS_FAILURES
from .served_stats import delete_exported, trimmed
from .served_decode import CHUNK, Decoder, ViewRows, entries, failed, read_served, truncate

if TYPE_CHECKING:
    from .online import OnlineStore

__all__ = ["ServedExport", "check_output", "export_served", "read_served"]

FILE_ENTRIES = 100_000
"""At most this many entries (requests) per file."""
FILE_BYTES = 8 << 20
"""A file takes entries until their blobs reach about this size (some 80,000 rows)."""
LOCK_MS = 600_000
"""An export's lock expires after this long (a killed export does not block the next)."""
_FILE = re.compile(r"^(\d+)-(\d+)_(\d+)-(\d+)\.parquet$")
_RELEASE = ("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) "
            "end return 0")
Progress = Callable[[int, int], None]
"""``progress(entries done, entries at the start)``."""


@dataclass(frozen=True)
class ServedExport:
    """What ``export_served`` did."""

    output: str
    entries: int
    """Stream entries (logged requests) exported and deleted from the stream."""
    already_exported: int
    """Entries found already in a file (an earlier export stopped before deleting them)."""
    rows: dict[str, int]
    """Rows written per view."""
    files: list[str]
    trimmed: int = 0
    """Entries the stream's length bound dropped, ever, before an export read them."""

    def to_dict(self) -> dict[str, Any]:
        return {"output": self.output, "entries": self.entries,
                "already_exported": self.already_exported, "rows": self.rows,
                "files": self.files, "trimmed": self.trimmed}

    def summary(self) -> str:
        if not self.entries and not self.already_exported:
            return f"The served log is empty: nothing exported (0 rows) to {self.output}."
        per_view = ", ".join(f"{v}: {n:,}" for v, n in self.rows.items()) or "none"
        again = (f"; {self.already_exported:,} already in files from an interrupted export"
                 if self.already_exported else "")
        lost = (f" The log's length bound has dropped {self.trimmed:,} entries before an export "
                "read them: export more often, or raise --log-max-entries."
                if self.trimmed else "")
        return (f"Exported {self.entries:,} served-log entries to {self.output} "
                f"({len(self.files)} files; rows per view: {per_view}){again}.{lost}")


def check_output(output: Path) -> None:
    """``output`` is a folder we can write files in (created if missing)."""
    try:
        output.mkdir(parents=True, exist_ok=True)
        probe = output / f".write-check-{secrets.token_hex(4)}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"cannot write the served log to --output {output}: "
                         f"{exc.strerror or exc}; pick a folder you can write to.") from exc


def export_served(online: OnlineStore, output: Path,
                  progress: Progress | None = None) -> ServedExport:
    """Drain the served log into ``output/<view>/*.parquet`` (see the module docstring)."""
    check_output(output)
    token = secrets.token_hex(8)
    lock = online.keys.served_export_lock()
    try:
        if not online.client.set(lock, token, nx=True, px=LOCK_MS):
            raise OnlineStoreError(
                f"another `served export` is running on {online.where} (it holds {lock}); "
                "wait for it to finish, or delete that key if it was killed.")
        total = int(online.client.xlen(online.keys.served_log()))
        lost = trimmed(online)
    except REDIS_FAILURES as exc:
        raise failed(online, "starting the export", exc) from exc
    try:
        return replace(_export(online, output, total, progress), trimmed=lost)
    finally:
        try:
            online.client.eval(_RELEASE, 1, lock, token)
        except REDIS_FAILURES:
            pass  # it expires


@dataclass
class ExportTally:
    """What an export did so far (counted across its chunks)."""

    entries: int = 0
    again: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)


def _export(online: OnlineStore, output: Path, total: int,
            progress: Progress | None) -> ServedExport:
    decoder = Decoder(online)
    done = ExportTally()
    exported = ExportedRanges(output)
    try:  # entries logged while exporting are left for the next export
        last = online.client.xrevrange(online.keys.served_log(), "+", "-", count=1)
    except REDIS_FAILURES as exc:
        raise failed(online, "reading the served log", exc) from exc
    while last:
        chunk = next_chunk(online, last[0][0])
        if not chunk:
            break
        export_chunk(online, decoder, exported, output, chunk, done)
        if progress is not None:
            progress(done.entries + done.again, total)
    return ServedExport(str(output), done.entries, done.again, dict(sorted(done.rows.items())),
                        done.files)


def next_chunk(online: OnlineStore, end: bytes) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """The oldest entries up to ``end``, as many as one file per view takes: up to
    ``FILE_ENTRIES`` entries and about ``FILE_BYTES`` of blobs (memory stays bounded: a
    100-entity request is 200 rows)."""
    chunk: list[tuple[bytes, dict[bytes, bytes]]] = []
    size, start = 0, b"-"
    while len(chunk) < FILE_ENTRIES and size < FILE_BYTES:
        wanted = min(CHUNK, FILE_ENTRIES - len(chunk))
        page = entries(online, start, end, wanted)
        chunk += page
        size += sum(len(fields.get(b"b", b"")) for _, fields in page)
        if len(page) < wanted:  # the end
            break
        start = b"(" + page[-1][0]
    return chunk


def export_chunk(online: OnlineStore, decoder: Decoder, exported: ExportedRanges,
                 output: Path, chunk: list[tuple[bytes, dict[bytes, bytes]]],
                 done: ExportTally) -> None:
    """Write one chunk's files (each renamed into place), then delete its entries."""
    for path in write_chunk(decoder, exported, output, chunk, done):
        done.files.append(str(path))
    delete_entries(online, [entry_id for entry_id, _ in chunk])


def write_chunk(decoder: Decoder, exported: ExportedRanges, output: Path,
                chunk: list[tuple[bytes, dict[bytes, bytes]]], done: ExportTally) -> list[Path]:
    """The chunk's files, one per view, each written whole then renamed into place; rows of
    entries a file of the view already holds are left out."""
    views: dict[str, ViewRows] = {}
    for entry_id, fields in chunk:
        before = {name: rows.n for name, rows in views.items()}
        decoder.add(entry_id, fields, views)
        mine = [v for v in views if views[v].n != before.get(v, 0)]
        held = [v for v in mine if exported.holds(v, entry_id)]
        for v in held:  # a view's file has them: an export stopped before deleting
            truncate(views[v], before.get(v, 0))
        if held and len(held) == len(mine):
            done.again += 1
        else:
            done.entries += 1
    name = f"{chunk[0][0].decode()}_{chunk[-1][0].decode()}.parquet"
    written = []
    for view, rows in views.items():
        if not rows.n:
            continue
        folder = output / view
        folder.mkdir(parents=True, exist_ok=True)
        written.append(_write_atomically(rows.table(), folder / name))
        done.rows[view] = done.rows.get(view, 0) + rows.n
        exported.add(view, chunk[0][0], chunk[-1][0])
    return written


def _write_atomically(table: pa.Table, path: Path) -> Path:
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temporary, "wb") as handle:
            pq.write_table(table, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}; the served log was left "
                         "in Redis, nothing is lost: free space or fix the folder, then "
                         "export again.") from exc
    return path


def delete_entries(online: OnlineStore, ids: list[bytes]) -> None:
    """``XDEL`` exactly these entries (counted as exported, ``served_stats``)."""
    try:
        for i in range(0, len(ids), 1000):
            delete_exported(online, ids[i:i + 1000])
    except REDIS_FAILURES as exc:
        raise failed(online, "deleting exported entries from the served log", exc) from exc


def _id(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


class ExportedRanges:
    """The stream-id ranges of the files already in each view's folder."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self.ranges: dict[str, list[tuple[tuple[int, int], tuple[int, int]]]] = {}

    def _of(self, view: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
        found = self.ranges.get(view)
        if found is None:
            found = []
            folder = self.output / view
            names: Iterable[str] = os.listdir(folder) if folder.is_dir() else ()
            for name in names:
                match = _FILE.match(name)
                if match:
                    a, b, c, d = map(int, match.groups())
                    found.append(((a, b), (c, d)))
            found.sort()
            self.ranges[view] = found
        return found

    def holds(self, view: str, entry_id: bytes) -> bool:
        ranges = self._of(view)
        key = _id(entry_id)
        at = bisect_right(ranges, (key, (2**63, 2**63)))
        return any(first <= key <= last for first, last in ranges[:at])

    def add(self, view: str, first: bytes, last: bytes) -> None:
        ranges = self._of(view)
        ranges.append((_id(first), _id(last)))
        ranges.sort()
