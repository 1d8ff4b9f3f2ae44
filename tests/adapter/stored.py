"""Where the online store keeps one entity's value, for tests that read or edit it by hand
(the bucket hash and field of ``layout.locate``, under the generation being served)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from dbt_features.serving.codec import Codec, Schema
from dbt_features.serving.layout import Keys, locate


@dataclass(frozen=True)
class Stored:
    """One entity's place: its bucket key and field, and the generation's codec."""

    key: str
    field: bytes
    codec: Codec

    def get(self, client: redis.Redis) -> bytes | None:
        return client.hget(self.key, self.field)

    def put(self, client: redis.Redis, blob: bytes) -> None:
        client.hset(self.key, self.field, blob)

    def delete(self, client: redis.Redis) -> None:
        client.hdel(self.key, self.field)


def stored(client: redis.Redis, prefix: str, view: str, *key_values: Any) -> Stored:
    keys = Keys(prefix, tagged=isinstance(client, redis.RedisCluster))
    gen, text = client.hmget(keys.meta(view), "gen", "schema")
    schema = Schema.parse(text)
    bucket, field = locate(key_values, schema.key_dtypes, schema.buckets)
    return Stored(keys.bucket(view, gen.decode(), bucket), field, Codec(schema))


def fields(client: redis.Redis, prefix: str, view: str) -> int:
    """How many entity values the generation being served holds."""
    keys = Keys(prefix, tagged=isinstance(client, redis.RedisCluster))
    gen = client.hget(keys.meta(view), "gen").decode()
    return sum(client.hlen(k) for k in client.scan_iter(match=keys.generation_pattern(view, gen),
                                                       count=10_000))
