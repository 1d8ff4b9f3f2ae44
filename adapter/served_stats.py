"""What the served log lost to its length bound: entries trimmed before an export read them.

``XADD ... MAXLEN ~ N`` drops the oldest entries of a full stream, silently. Redis counts every
entry ever added (``XINFO STREAM``'s ``entries-added``, Redis 7), and exports count what they
deleted, in the same script as the deletion (``P:@served_log:stats``, field ``exported``), so
what is neither in the stream nor exported was trimmed:

    trimmed = entries-added - length - exported
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .cluster import REDIS_FAILURES
from .metrics import family

if TYPE_CHECKING:
    from .online import OnlineStore

EXPORTED = "exported"
_DELETE = """
local n = redis.call('XDEL', KEYS[1], unpack(ARGV))
redis.call('HINCRBY', KEYS[2], 'exported', n)
return n
"""
"""``XDEL`` the exported entries and count them, at once: a crash between the two would count
the deleted entries as trimmed."""


def delete_exported(online: OnlineStore, ids: list[bytes]) -> int:
    """Delete exported entries (at most a few thousand ids) and count them exported."""
    keys = online.keys
    return int(online.client.eval(_DELETE, 2, keys.served_log(), keys.served_stats(), *ids))


def trimmed(online: OnlineStore) -> int:
    """Entries the length bound dropped before any export read them (0 without a stream)."""
    keys = online.keys
    client = online.client
    if not client.exists(keys.served_log()):
        return 0
    info = client.xinfo_stream(keys.served_log())
    exported = int(client.hget(keys.served_stats(), EXPORTED) or 0)
    return max(0, int(info["entries-added"]) - int(info["length"]) - exported)


def trimmed_metrics(online: OnlineStore) -> str:
    """Prometheus text of ``trimmed`` (empty when Redis cannot say: /metrics still answers)."""
    try:
        count = trimmed(online)
    except REDIS_FAILURES:
        return ""
    out: list[str] = []
    family(out, "dbt_features_served_log_trimmed_total", "counter",
           "Served-log entries dropped by the stream's length bound (--log-max-entries) "
           "before an export read them.", [("", count)])
    return "\n".join(out) + "\n"
