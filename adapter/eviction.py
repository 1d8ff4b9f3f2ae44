"""Redis eviction: a server that may drop keys under memory pressure would silently serve
"not found" for features that were synced. ``sync`` refuses such a server unless told
otherwise; ``status`` reports keys the server evicted."""

from __future__ import annotations

from dataclasses import dataclass, replace


from dbt_features.errors import OnlineStoreError

from .cluster import REDIS_FAILURES, Client, node_infos


@dataclass(frozen=True)
class MemoryPolicy:
    """The server's memory limit, eviction policy and how many keys it has evicted."""

    maxmemory: int
    policy: str
    evicted_keys: int

    @property
    def can_evict(self) -> bool:
        """Every policy but ``noeviction`` drops keys once ``maxmemory`` is reached (the
        ``volatile-*`` ones too: feature keys with a ttl carry an expiry)."""
        return self.maxmemory > 0 and self.policy != "noeviction"

    def describe(self) -> str:
        return f"maxmemory {self.maxmemory:,} bytes, maxmemory-policy {self.policy}"


def memory_policy(client: Client) -> MemoryPolicy:
    """Read from INFO (answered by managed services that disable CONFIG); on a Redis Cluster,
    the first master that can evict (else the first), with the evictions of all of them."""
    policies = [
        MemoryPolicy(int(info.get("maxmemory", 0) or 0), str(info.get("maxmemory_policy", "noeviction")),
                     int(info.get("evicted_keys", 0) or 0))
        for info in node_infos(client, "memory", "stats")
    ]
    worst = next((p for p in policies if p.can_evict), policies[0])
    return replace(worst, evicted_keys=sum(p.evicted_keys for p in policies))


def check_eviction(client: Client, where: str, *, allow: bool) -> str | None:
    """Refuse a server that can evict keys (``OnlineStoreError``), or, when ``allow``, return
    the warning to show."""
    try:
        policy = memory_policy(client)
    except REDIS_FAILURES as exc:
        raise OnlineStoreError(f"cannot read the memory settings of Redis at {where}: {exc}") from exc
    if not policy.can_evict:
        return None
    message = (
        f"Redis at {where} evicts keys when its memory is full ({policy.describe()}): an "
        "evicted feature value would silently be served as not found."
    )
    if not allow:
        raise OnlineStoreError(
            f"{message} Set `maxmemory-policy noeviction` (a full Redis then fails the sync "
            "loudly, publishing nothing), give it more memory, or pass --allow-eviction to sync "
            "anyway."
        )
    return f"WARNING: {message} Synced anyway (--allow-eviction); run `dbt-features verify`."
