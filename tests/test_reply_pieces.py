"""Replies that arrive in pieces, cut where a test chooses.

A small relay sits between a connection and the real server: what the client
sends goes through as it is, and what the server answers is held until the
test releases it, in pieces of the test's choosing, so each piece is a
separate read on the client's side.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aioredismq.connection import Connection, ConnectionSettings, encode_command


class Relay:
    """Forwards client bytes to the server; holds server bytes for `release`."""

    def __init__(self, settings: ConnectionSettings) -> None:
        self._target = settings
        self._held = bytearray()
        self._arrived = asyncio.Condition()
        self._to_client: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        server_in, server_out = await asyncio.open_connection(
            self._target.host, self._target.port
        )
        self._to_client = client_out
        self._writers += [client_out, server_out]

        async def upstream() -> None:
            while data := await client_in.read(65536):
                server_out.write(data)
            server_out.close()

        async def downstream() -> None:
            while data := await server_in.read(65536):
                async with self._arrived:
                    self._held += data
                    self._arrived.notify_all()

        self._tasks += [
            asyncio.create_task(upstream()),
            asyncio.create_task(downstream()),
        ]

    async def wait_for(self, size: int) -> None:
        """Until the server has answered at least `size` bytes in all."""
        async with self._arrived:
            await self._arrived.wait_for(lambda: len(self._held) >= size)

    @property
    def held(self) -> bytes:
        return bytes(self._held)

    async def release(self, *sizes: int) -> None:
        """Send that many held bytes, piece by piece, one read each."""
        assert self._to_client is not None
        for size in sizes:
            piece, self._held[:size] = self._held[:size], b""
            self._to_client.write(piece)
            await self._to_client.drain()
            await asyncio.sleep(0.01)  # the client reads it on its own

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.close()
        await asyncio.gather(
            *(writer.wait_closed() for writer in self._writers), return_exceptions=True
        )
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture
async def relayed(
    conn: Connection, settings: ConnectionSettings
) -> AsyncIterator[tuple[Connection, Relay]]:
    relay = Relay(settings)
    await relay.start()
    client = await Connection.open(ConnectionSettings(port=relay.port))
    yield client, relay
    await client.close()
    await relay.close()


def boundaries(data: bytes) -> list[int]:
    """Offsets just after each CR LF in `data`."""
    found, at = [], data.find(b"\r\n")
    while at != -1:
        found.append(at + 2)
        at = data.find(b"\r\n", at + 2)
    return found


async def fill(conn: Connection, key: str, count: int) -> list[Any]:
    for i in range(count):
        await conn.execute("XADD", key, "*", "payload", b"%d" % i * 30)
    entries: list[Any] = await conn.execute("XRANGE", key, "-", "+")
    return entries


async def test_one_batch_cut_everywhere_reads_the_same(
    conn: Connection, relayed: tuple[Connection, Relay]
) -> None:
    client, relay = relayed
    expected = await fill(conn, "cuts", 20)
    command = encode_command("XRANGE", "cuts", "-", "+")
    # Cut mid-element, one byte at a time across a CR LF, and exactly after
    # a CR LF inside the reply (parsed early, half-built): same result.
    for plan in ("middle", "bytes", "crlf"):
        future = client.request(command + encode_command("PING"), 2)
        await relay.wait_for(1)
        await asyncio.sleep(0.05)
        data = relay.held
        assert data.endswith(b"+PONG\r\n")
        if plan == "middle":
            cuts = [len(data) // 3, len(data) // 3, len(data)]
        elif plan == "bytes":
            cuts = [boundaries(data)[5] - 1] + [1] * 4 + [len(data)]
        else:
            cuts = [boundaries(data)[7], boundaries(data)[20] - boundaries(data)[7]]
            cuts.append(len(data))
        await relay.release(*cuts)
        assert await asyncio.wait_for(future, 5) == [expected, b"PONG"]


async def test_a_finished_batch_is_not_held_back_by_the_next(
    conn: Connection, relayed: tuple[Connection, Relay]
) -> None:
    client, relay = relayed
    expected = await fill(conn, "two", 10)
    first = client.request(encode_command("XRANGE", "two", "-", "+"), 1)
    second = client.request(encode_command("XRANGE", "two", "-", "+"), 1)
    await relay.wait_for(1)
    await asyncio.sleep(0.05)
    whole = len(relay.held)
    assert whole % 2 == 0
    # The first reply whole, the second one cut in its middle.
    await relay.release(whole // 2 + 10)
    assert await asyncio.wait_for(first, 5) == [expected]
    assert not second.done()
    await relay.release(whole // 2 - 10)
    assert await asyncio.wait_for(second, 5) == [expected]


async def test_convert_turns_the_replies_and_its_error_fails_only_its_batch(
    relayed: tuple[Connection, Relay],
) -> None:
    client, relay = relayed

    def lower(reply: Any) -> Any:
        return reply.lower()

    def broken(reply: Any) -> Any:
        raise ValueError("convert failed")

    two_pings = encode_command("PING") * 2
    converted = client.request(two_pings, 2, lower)
    failed = client.request(two_pings, 2, broken)
    plain = client.request(two_pings, 2)
    await relay.wait_for(len(b"+PONG\r\n") * 6)
    await relay.release(len(relay.held))
    assert await asyncio.wait_for(converted, 5) == [b"pong", b"pong"]
    with pytest.raises(ValueError, match="convert failed"):
        await asyncio.wait_for(failed, 5)
    assert await asyncio.wait_for(plain, 5) == [b"PONG", b"PONG"]
    # The connection goes on as before.
    ping = client.request(encode_command("PING"), 1)
    await relay.wait_for(len(b"+PONG\r\n"))
    await relay.release(len(relay.held))
    assert await asyncio.wait_for(ping, 5) == [b"PONG"]


async def test_a_batch_of_big_replies_held_in_many_pieces(
    conn: Connection, relayed: tuple[Connection, Relay]
) -> None:
    client, relay = relayed
    expected = await fill(conn, "big", 300)
    command = encode_command("XRANGE", "big", "-", "+")
    future = client.request(command * 3, 3)
    await relay.wait_for(1)
    await asyncio.sleep(0.05)
    size = len(relay.held)
    # Pieces that end anywhere, most of them inside a reply.
    await relay.release(*([size // 7 + 3] * 6), size)
    assert await asyncio.wait_for(future, 5) == [expected] * 3
