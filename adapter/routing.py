"""Where the writes of one generation go: one pipelined writer on a single Redis; on a Redis
Cluster one per master, each bucket's commands sent to the master that serves its slot, and
every master's replicas confirmed (``WAIT``) before the sync publishes anything (``cluster``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
from hiredis import pack_command

from .cluster import REPLICATION_TIMEOUT_MS, Client, Topology, check_replicated, is_cluster
from .config import OnlineConfig
from .writer import PipelinedWriter


@dataclass
class BucketWriters:
    writers: list[PipelinedWriter]
    node_of: np.ndarray | None
    """Each bucket's writer (None: a single Redis, one writer)."""
    replicas: list[int]
    """Each writer's master's connected replicas (0 on a single Redis: nothing to wait for)."""
    names: list[str]

    @classmethod
    def open(cls, client: Client, config: OnlineConfig, base: bytes, buckets: int) -> "BucketWriters":
        if not is_cluster(client):
            return cls([PipelinedWriter(client, config)], None, [0], [config.shown])
        topology = Topology(client)  # type: ignore[arg-type]
        topology.refresh()
        node_of = topology.node_indexes([base + b"%d" % b for b in range(buckets)])
        count = len(topology.nodes)
        return cls([PipelinedWriter(topology.connection(i), config) for i in range(count)],
                   node_of, [topology.replicas(i) for i in range(count)],
                   [topology.nodes[i].name for i in range(count)])

    @property
    def clustered(self) -> bool:
        return self.node_of is not None

    def parts(self, buckets: np.ndarray) -> Iterator[tuple[PipelinedWriter, np.ndarray | None]]:
        """Each writer with the positions of the rows it takes (None: all of them)."""
        if self.node_of is None:
            yield self.writers[0], None
            return
        nodes = self.node_of[buckets]
        for i, writer in enumerate(self.writers):
            rows = np.flatnonzero(nodes == i)
            if len(rows):
                yield writer, rows

    def flush(self) -> list[Any]:
        """Every reply kept, once every writer's master has its writes on its replicas."""
        replies: list[Any] = []
        for writer in self.writers:
            replies += writer.flush()
        for writer, replicas, name in zip(self.writers, self.replicas, self.names):
            if replicas:
                writer.send_commands([pack_command(("WAIT", replicas, REPLICATION_TIMEOUT_MS))])
                check_replicated(int(writer.flush()[0]), replicas, name)
        return replies

    def close(self, *, broken: bool = False) -> None:
        for writer in self.writers:
            writer.close(broken=broken)
