"""The per-view sync lock: a Redis key with an expiry, kept alive by a background thread.

Two syncs of one view never interleave: the second fails at once with a message naming the
holder. A holder that died (killed, crashed) stops refreshing, so its lock expires within
``LOCK_TTL_MS``; on the same host a dead holder's lock is taken over at once.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from datetime import datetime, timezone


from dbt_features.errors import OnlineStoreError

from .cluster import REDIS_FAILURES, Client
from .scripts import LOCK_REFRESH, LOCK_RELEASE, LOCK_STEAL

LOCK_TTL_MS = 30_000
REFRESH_EVERY_S = 5.0


class SyncLock:
    """``with SyncLock(client, key, view):`` holds the lock for the block."""

    def __init__(self, client: Client, key: str, view: str) -> None:
        self.client = client
        self.key = key
        self.view = view
        self.token = json.dumps(
            {
                "id": uuid.uuid4().hex,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False

    def __enter__(self) -> "SyncLock":
        if not self.client.set(self.key, self.token, nx=True, px=LOCK_TTL_MS):
            held = self.client.get(self.key)
            if held is None or not self._take_over_dead(held):
                raise OnlineStoreError(self._busy_message(held))
        self._thread = threading.Thread(target=self._keep_alive, daemon=True, name="sync-lock")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        try:
            self.client.eval(LOCK_RELEASE, 1, self.key, self.token)
        except REDIS_FAILURES:
            pass  # the lock expires by itself

    def _keep_alive(self) -> None:
        while not self._stop.wait(REFRESH_EVERY_S):
            try:
                if not self.client.eval(LOCK_REFRESH, 1, self.key, self.token, LOCK_TTL_MS):
                    self.lost = True
                    return
            except REDIS_FAILURES:
                continue  # transient: the next refresh (or the commit check) decides

    def _take_over_dead(self, held: bytes) -> bool:
        """Take a lock whose holder was a process on this host that no longer runs."""
        try:
            holder = json.loads(held)
            if holder.get("host") != socket.gethostname():
                return False
            os.kill(int(holder["pid"]), 0)
            return False  # the holder is alive
        except ProcessLookupError:
            return bool(self.client.eval(LOCK_STEAL, 1, self.key, held, self.token, LOCK_TTL_MS))
        except (ValueError, KeyError, TypeError, PermissionError):
            return False

    def _busy_message(self, held: bytes | None) -> str:
        try:
            holder = json.loads(held or b"{}")
            who = f"pid {holder['pid']} on {holder['host']}, since {holder['started']}"
        except (ValueError, KeyError, TypeError):
            who = "another process"
        return (
            f"another sync of feature view {self.view!r} is running ({who}); wait for it to "
            f"finish and run again (a stopped sync's lock expires within {LOCK_TTL_MS // 1000} s)."
        )
