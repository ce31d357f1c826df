"""Where a command goes: one server, or the node of a cluster owning its key.

Everything that reads or writes streams takes a `Router`, so the same
producer and consumer code runs on a single server and on a cluster.
`ClusterConnections` (in `aioredismq.cluster`) routes by hash slot;
`SingleNode` sends everything down one pipelined connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from aioredismq.connection import Connection, ConnectionSettings

__all__ = ["Router", "SingleNode"]


class Router(Protocol):
    """Routes commands by the key they touch."""

    async def request_by_key(
        self, commands: Sequence[tuple[bytes | str, bytes]]
    ) -> list[Any]:
        """Send (routing key, encoded command) pairs; replies in that order."""
        ...

    def connection_for_key(self, key: bytes | str) -> Connection:
        """The shared (non-blocking) connection serving `key`."""
        ...

    def settings_for_key(self, key: bytes | str) -> ConnectionSettings:
        """Where to open a dedicated connection (for blocking reads) for `key`."""
        ...


class SingleNode:
    """A `Router` for one server: every key is served by one connection."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    async def request_by_key(
        self, commands: Sequence[tuple[bytes | str, bytes]]
    ) -> list[Any]:
        if not commands:
            return []
        data = b"".join(command for _, command in commands)
        return await self.connection.request(data, len(commands))

    def connection_for_key(self, key: bytes | str) -> Connection:
        return self.connection

    def settings_for_key(self, key: bytes | str) -> ConnectionSettings:
        return self.connection.settings
