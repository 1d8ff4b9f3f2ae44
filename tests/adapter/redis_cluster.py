"""A Redis Cluster of the test's own on loopback: three masters with one replica each, no
persistence, fast failover (``cluster-node-timeout`` 1 s). Its processes are stopped by their
own pids; the shared Redis is never touched.

Also a command for the cluster demo (``make demo-cluster``)::

    python tests/adapter/redis_cluster.py start DIR   # prints the URL of one master
    python tests/adapter/redis_cluster.py stop DIR
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from redis.crc import key_slot

MASTERS = 3
NODE_TIMEOUT_MS = 1000


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """``count`` consecutive free ports whose cluster-bus ports (+10000) are free too."""
    for _ in range(200):
        base = random.randrange(21_000, 30_000)  # below Linux's ephemeral ports (32768+)
        ports = list(range(base, base + count))
        if all(_free(p) and _free(p + 10_000) for p in ports):
            return ports
    raise AssertionError("no free ports for a Redis Cluster")


class _PortTaken(AssertionError):
    pass


class RedisCluster:
    """``with RedisCluster() as cluster:`` a private cluster at ``cluster.url``."""

    def __init__(self, directory: Path | None = None, ports: list[int] | None = None) -> None:
        self.ports = ports or free_ports(2 * MASTERS)
        self.directory = directory or Path(tempfile.mkdtemp(prefix="dbtf-cluster-"))
        self.procs: dict[int, subprocess.Popen] = {}

    restartable = False
    """Unlike ``RedisProcess``: restarting a whole cluster empty takes seconds."""

    @property
    def url(self) -> str:
        """Every node, so that a command can start while one of them is down."""
        return "redis://" + ",".join(f"127.0.0.1:{p}" for p in self.ports) + "/0"

    def __enter__(self) -> "RedisCluster":
        try:
            self.start()
        except BaseException:
            self.__exit__()  # no node left running when the cluster did not come up
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def start(self) -> None:
        for attempt in range(3):
            try:
                for port in self.ports:
                    self._start_node(port)
                break
            except _PortTaken:  # taken since it was found free (another test's server)
                self.stop()
                if attempt == 2:
                    raise
                self.ports = free_ports(len(self.ports))
        nodes = [f"127.0.0.1:{p}" for p in self.ports]
        subprocess.run(["redis-cli", "--cluster", "create", *nodes, "--cluster-replicas", "1",
                        "--cluster-yes"], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60)
        self.wait_ok()

    def _start_node(self, port: int) -> None:
        node_dir = self.directory / str(port)
        node_dir.mkdir(parents=True, exist_ok=True)
        self.procs[port] = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--cluster-enabled", "yes", "--cluster-config-file",
             "nodes.conf", "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--dir", str(node_dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self._answers(port):
            if self.procs[port].poll() is not None:
                raise _PortTaken(port)
            if time.monotonic() > deadline:
                raise AssertionError(f"cluster node on port {port} did not start")
            time.sleep(0.02)

    def _answers(self, port: int) -> bool:
        client = redis.Redis(port=port, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def wait_ok(self, timeout: float = 30) -> None:
        """Until every live node says ``cluster_state:ok`` and sees the same masters."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._state(p) == "ok" for p in self.live_ports()):
                return
            time.sleep(0.05)
        raise AssertionError("the Redis Cluster did not become ok")

    def _state(self, port: int) -> str:
        client = redis.Redis(port=port, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            return str(client.cluster("info").get("cluster_state"))
        except redis.RedisError:
            return "unreachable"
        finally:
            client.close()

    def live_ports(self) -> list[int]:
        return [p for p, proc in self.procs.items() if proc.poll() is None]

    def masters(self) -> list[int]:
        """Ports of the live masters."""
        found = []
        for port in self.live_ports():
            client = redis.Redis(port=port, socket_timeout=1)
            try:
                if client.info("replication").get("role") == "master":
                    found.append(port)
            finally:
                client.close()
        return found

    def master_of(self, key: str) -> int:
        """The port of the live master serving ``key``."""
        slot = key_slot(key.encode())
        client = redis.Redis(port=self.live_ports()[0], socket_timeout=1)
        try:
            for start, end, master, *_ in client.cluster("slots"):
                if start <= slot <= end:
                    return int(master[1])
        finally:
            client.close()
        raise AssertionError(f"no master serves slot {slot}")

    def client(self) -> redis.RedisCluster:
        return redis.RedisCluster(host="127.0.0.1", port=self.live_ports()[0], socket_timeout=5)

    def kill(self, port: int) -> None:
        """SIGKILL one node (its data is gone); its replica takes over within seconds."""
        proc = self.procs[port]
        proc.kill()
        proc.wait(10)

    def wait_failover(self, killed: int, timeout: float = 30) -> None:
        """Until a replica replaced the killed master and the cluster is ok again."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.masters()) == MASTERS and all(self._state(p) == "ok" for p in self.live_ports()):
                return
            time.sleep(0.1)
        raise AssertionError(f"no failover after killing the master on port {killed}")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        self.procs.clear()


def _main(argv: list[str]) -> int:
    command, directory = argv[0], Path(argv[1])
    pids = directory / "pids.json"
    if command == "start":
        directory.mkdir(parents=True, exist_ok=True)
        cluster = RedisCluster(directory)
        try:
            cluster.start()
        except BaseException:
            cluster.stop()
            raise
        pids.write_text(json.dumps([p.pid for p in cluster.procs.values()]))
        print(cluster.url)
        return 0
    for pid in json.loads(pids.read_text()) if pids.exists() else []:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
