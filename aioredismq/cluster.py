"""Redis Cluster routing for pipelined connections.

A cluster splits the key space into 16384 hash slots, each owned by one
primary. `ClusterConnections` keeps the slot map and one pipelined
`Connection` per primary, and routes commands by key: a batch becomes one
write per node, all nodes written at once, with the replies handed back in
the caller's order. A slot that changed owner answers `MOVED` (the map is
re-read and the command re-sent); a slot being migrated answers `ASK` (the
command goes to the named node once, behind `ASKING`).

Commands that block (`XREADGROUP ... BLOCK`) must not share these
connections, since a blocked socket stalls every batch queued behind it;
`settings_for_key` says where to open a dedicated connection instead.
"""

from __future__ import annotations

import asyncio
import binascii
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from aioredismq.connection import (
    Connection,
    ConnectionSettings,
    encode_command,
    is_reply_error,
)
from aioredismq.errors import (
    ClosedError,
    ClusterRedirectError,
    ConfigError,
    RedisError,
    ReplyError,
    ServerUnavailableError,
)

__all__ = ["MAX_REDIRECTS", "SLOT_COUNT", "ClusterConnections", "key_slot"]

logger = logging.getLogger(__name__)

SLOT_COUNT = 16384
#: Rounds of MOVED/ASK a command may go through before we give up on it.
MAX_REDIRECTS = 5

Address = tuple[str, int]

_ASKING = encode_command("ASKING")


def key_slot(key: bytes | str) -> int:
    """The hash slot of `key`: CRC16 (XMODEM) of its hash tag, mod 16384.

    The hash tag is what lies between the first `{` and the first `}` after
    it, when that is not empty; otherwise the whole key is hashed.
    """
    data = key.encode() if isinstance(key, str) else key
    start = data.find(b"{")
    if start != -1:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1 : end]
    # crc_hqx is CRC-CCITT with polynomial 0x1021 and no reflection, which
    # started from 0 is exactly the XMODEM variant the cluster uses.
    return binascii.crc_hqx(data, 0) % SLOT_COUNT


def _redirect(reply: Any, replied_host: str) -> tuple[str, Address] | None:
    """("MOVED" or "ASK", target) when `reply` is a redirect, else None."""
    if not is_reply_error(reply):
        return None
    kind, _, rest = str(reply).partition(" ")
    if kind not in ("MOVED", "ASK"):
        return None
    # "MOVED <slot> <host>:<port>"; rpartition keeps IPv6 hosts whole, and an
    # empty host means the node we already talk to knows no better name.
    host, _, port = rest.partition(" ")[2].rpartition(":")
    return kind, (host or replied_host, int(port))


class ClusterConnections:
    """One pipelined connection per cluster primary, routed by hash slot.

    Build it with `await ClusterConnections.connect(seeds)`. Credentials, TLS
    and timeouts of the first seed apply to every node; the node addresses
    themselves come from the cluster.
    """

    def __init__(self, seeds: Sequence[ConnectionSettings]) -> None:
        if not seeds:
            raise ConfigError("seeds", None, [], "expected at least one node")
        self._seeds = list(seeds)
        self._template = seeds[0]
        self._slots: list[Address | None] = [None] * SLOT_COUNT
        self._conns: dict[Address, Connection] = {}
        self._refresh_lock = asyncio.Lock()
        self._generation = 0
        self._closed = False

    @classmethod
    async def connect(cls, seeds: Sequence[ConnectionSettings]) -> ClusterConnections:
        """Read the slot map from the first seed that answers; connect to all."""
        cluster = cls(seeds)
        try:
            await cluster.refresh()
        except BaseException:
            await cluster.close()
            raise
        return cluster

    # routing

    @property
    def nodes(self) -> list[Address]:
        """(host, port) of every primary that owns slots, in the last map read."""
        return sorted({address for address in self._slots if address is not None})

    def settings_for_key(self, key: bytes | str) -> ConnectionSettings:
        """Settings to open a dedicated connection to the node owning `key`."""
        return self._settings_at(self._owner(key_slot(key)))

    def connection_for_key(self, key: bytes | str) -> Connection:
        """The shared connection to the node owning `key`.

        It may be closed if that node went away; `refresh()` reconnects.
        """
        address = self._owner(key_slot(key))
        conn = self._conns.get(address)
        if conn is None:
            raise ClosedError(f"no connection to {address[0]}:{address[1]}")
        return conn

    async def request_by_key(
        self, commands: Sequence[tuple[bytes | str, bytes]]
    ) -> list[Any]:
        """Send (routing key, encoded command) pairs; replies in the same order.

        Each command must produce exactly one reply. Error replies other than
        redirects come back as values, as with `Connection.request`. Commands
        for one node keep their relative order, but nothing is atomic across
        nodes, and a redirected command is re-sent alone: send a MULTI/EXEC
        block as one batch on `connection_for_key` instead. If a node's
        connection is lost, its error is raised once every node has answered,
        so commands sent to the others may have run.
        """
        replies: list[Any] = [None] * len(commands)
        # Per command still to send: where to, and whether ASKING goes first.
        todo = {
            index: (self._owner(key_slot(key)), False)
            for index, (key, _) in enumerate(commands)
        }
        for _ in range(MAX_REDIRECTS + 1):
            by_node: dict[Address, list[tuple[int, bool]]] = {}
            for index in sorted(todo):
                address, asking = todo[index]
                by_node.setdefault(address, []).append((index, asking))
            conns = await asyncio.gather(*map(self._node, by_node))
            futures = []
            for conn, batch in zip(conns, by_node.values(), strict=True):
                data = b"".join(
                    _ASKING + commands[i][1] if asking else commands[i][1]
                    for i, asking in batch
                )
                expected = len(batch) + sum(asking for _, asking in batch)
                futures.append(conn.request(data, expected))
            # Wait for every node before raising, so no failure goes unretrieved.
            results = await asyncio.gather(*futures, return_exceptions=True)
            if failed := [r for r in results if isinstance(r, BaseException)]:
                raise failed[0]
            todo = {}
            moved = False
            for (address, batch), result in zip(by_node.items(), results, strict=True):
                assert isinstance(result, list)
                node_replies = iter(result)
                for index, asking in batch:
                    if asking:
                        next(node_replies)  # ASKING's +OK
                    reply = next(node_replies)
                    target = _redirect(reply, address[0])
                    if target is None:
                        replies[index] = reply
                        continue
                    kind, where = target
                    moved = moved or kind == "MOVED"
                    todo[index] = (where, kind == "ASK")
            if not todo:
                return replies
            if moved:
                # Our map is stale: re-read it so later calls route right. The
                # re-send goes where the node said, which is at least as fresh.
                await self.refresh()
        index = min(todo)
        raise ClusterRedirectError(
            f"{len(todo)} command(s) still redirected after {MAX_REDIRECTS} "
            f"redirects (key {commands[index][0]!r} last sent to "
            f"{todo[index][0][0]}:{todo[index][0][1]}); are slots being resharded?"
        )

    # slot map

    async def refresh(self) -> None:
        """Re-read the slot map and connect to any primary not yet connected."""
        generation = self._generation
        async with self._refresh_lock:
            # Several callers that hit MOVED together need only one re-read.
            if self._generation != generation:
                return
            await self._read_slot_map()
            await asyncio.gather(*map(self._node, self.nodes))
            self._generation += 1

    async def _read_slot_map(self) -> None:
        # Ask the nodes we know first, then the seeds, so a cluster that has
        # moved on from its seed addresses is still found.
        candidates = [c.settings for c in self._conns.values() if not c.closed]
        candidates += [s for s in self._seeds if s not in candidates]
        failures: list[str] = []
        last_error: RedisError | None = None
        for settings in candidates:
            cached = self._conns.get((settings.host, settings.port))
            if cached is not None and cached.closed:
                cached = None
            try:
                conn = cached or await Connection.open(settings)
                try:
                    reply = await conn.execute("CLUSTER", "SLOTS")
                finally:
                    if conn is not cached:
                        await conn.close()
            except RedisError as err:
                failures.append(f"{settings.host}:{settings.port}: {err}")
                last_error = err
                continue
            self._apply_slot_map(reply, settings.host)
            return
        if isinstance(last_error, ReplyError):
            raise last_error  # reachable but e.g. not in cluster mode
        addresses = ", ".join(f"{s.host}:{s.port}" for s in candidates)
        raise ServerUnavailableError(addresses, "; ".join(failures))

    def _apply_slot_map(self, reply: list[Any], reached_host: str) -> None:
        slots: list[Address | None] = [None] * SLOT_COUNT
        # Each range is [start, end, primary, replica...]; a node is
        # [host, port, id, ...]. Only primaries are used.
        for start, end, primary, *_ in reply:
            raw_host = primary[0]
            host = raw_host.decode() if isinstance(raw_host, bytes) else raw_host
            # NULL, "" or "?" all mean the node does not know a usable name
            # for itself: use the one we reached it by.
            if not host or host == "?":
                host = reached_host
            address = (host, int(primary[1]))
            slots[start : end + 1] = [address] * (end + 1 - start)
        self._slots = slots
        logger.debug("slot map from %s: primaries %s", reached_host, self.nodes)

    def _owner(self, slot: int) -> Address:
        address = self._slots[slot]
        if address is not None:
            return address
        # Nobody owns the slot in our map: any node will answer with MOVED
        # (the map was stale) or CLUSTERDOWN, which is the honest reply.
        nodes = self.nodes
        if not nodes:
            raise RedisError("the cluster serves no slots; is it set up?")
        return nodes[slot % len(nodes)]

    # connections

    async def primaries(self) -> list[Connection]:
        """One open connection per primary (for per-node commands like SCAN)."""
        return [await self._node(address) for address in self.nodes]

    def _settings_at(self, address: Address) -> ConnectionSettings:
        return replace(self._template, host=address[0], port=address[1])

    async def _node(self, address: Address) -> Connection:
        """The open connection to `address`, (re)connecting when needed."""
        if self._closed:
            raise ClosedError("cluster connections used after close")
        conn = self._conns.get(address)
        if conn is not None and not conn.closed:
            return conn
        fresh = await Connection.open(self._settings_at(address))
        if self._closed:
            await fresh.close()
            raise ClosedError("cluster connections closed while connecting")
        current = self._conns.get(address)
        if current is not None and not current.closed:
            await fresh.close()  # another task connected first; keep one
            return current
        self._conns[address] = fresh
        return fresh

    async def close(self) -> None:
        """Close every node connection."""
        self._closed = True
        conns, self._conns = list(self._conns.values()), {}
        await asyncio.gather(*(conn.close() for conn in conns))
