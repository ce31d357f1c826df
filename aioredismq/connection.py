"""One pipelined RESP2 connection, with commands encoded by hand.

redis-py spends most of its per-command time in Python bookkeeping around
each command of a pipeline. Here a batch of commands is one `bytes` written in
one call, and the replies are parsed by hiredis's C reader straight from
`data_received`; each batch completes one future with the list of its
replies. That is what makes the producer and consumer hot paths cheap.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections import deque
from dataclasses import dataclass, replace
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import hiredis

from aioredismq.errors import (
    ClosedError,
    ConfigError,
    ProtocolError,
    RedisConnectionError,
    ServerUnavailableError,
    reply_error,
)

__all__ = [
    "Connection",
    "ConnectionSettings",
    "encode_command",
    "is_reply_error",
    "raise_for_reply",
]

logger = logging.getLogger(__name__)

DEFAULT_PORT = 6379


class _HiredisReplyError(Exception):
    """What hiredis hands back, as a value, for an error reply."""


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    """Where a server is and how to log in to it."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    username: str | None = None
    password: str | None = None
    db: int = 0
    tls: bool = False
    connect_timeout_s: float = 5.0

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> ConnectionSettings:
        """Parse `redis://[user[:password]@]host[:port][/db]` (or `rediss://`)."""
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            allowed = "expected redis://host:port or rediss://host:port"
            raise ConfigError("url", None, url, allowed)
        db_text = parts.path.lstrip("/") or "0"
        if not db_text.isdigit():
            raise ConfigError("url", "database", db_text, "expected an integer")
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError as err:
            raise ConfigError("url", "port", url, "expected 1-65535") from err
        settings = cls(
            host=parts.hostname or "127.0.0.1",
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            db=int(db_text),
            tls=parts.scheme == "rediss",
        )
        return replace(settings, **overrides) if overrides else settings

    @property
    def address(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{self.host}:{self.port}"


def _bulk(arg: bytes | str | int | float) -> bytes:
    if isinstance(arg, bytes):
        data = arg
    elif isinstance(arg, str):
        data = arg.encode()
    else:
        data = str(arg).encode()
    return b"$%d\r\n%b\r\n" % (len(data), data)


def encode_command(*args: bytes | str | int | float) -> bytes:
    """RESP encoding of one command, e.g. `encode_command("XLEN", key)`."""
    return b"*%d\r\n%b" % (len(args), b"".join(map(_bulk, args)))


def is_reply_error(reply: Any) -> bool:
    """True when `reply` is an error reply returned as a value."""
    return isinstance(reply, _HiredisReplyError)


def raise_for_reply(reply: Any) -> Any:
    """Return `reply`, or raise the matching error if it is an error reply."""
    if isinstance(reply, _HiredisReplyError):
        raise reply_error(str(reply))
    return reply


class _Batch:
    __slots__ = ("future", "expected", "replies")

    def __init__(self, future: asyncio.Future[list[Any]], expected: int) -> None:
        self.future = future
        self.expected = expected
        self.replies: list[Any] = []


class Connection(asyncio.Protocol):
    """A pipelined connection: write batches of commands, await their replies.

    Error replies come back inside the reply list as values (check them with
    `raise_for_reply`), so one bad command does not hide the others' results.
    Losing the connection fails every batch still waiting.
    """

    def __init__(self, settings: ConnectionSettings) -> None:
        self.settings = settings
        self._loop = asyncio.get_running_loop()
        self._reader = hiredis.Reader(
            protocolError=ProtocolError, replyError=_HiredisReplyError
        )
        self._pending: deque[_Batch] = deque()
        self._transport: asyncio.Transport | None = None
        self._closed_error: Exception | None = None
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._lost = self._loop.create_future()

    @classmethod
    async def open(cls, settings: ConnectionSettings) -> Connection:
        """Connect, log in and select the database."""
        loop = asyncio.get_running_loop()
        tls_context = ssl.create_default_context() if settings.tls else None
        try:
            async with asyncio.timeout(settings.connect_timeout_s):
                _, conn = await loop.create_connection(
                    lambda: cls(settings),
                    settings.host,
                    settings.port,
                    ssl=tls_context,
                )
        except (OSError, TimeoutError) as err:
            reason = str(err) or type(err).__name__
            raise ServerUnavailableError(settings.address, reason) from err
        try:
            await conn._handshake()
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _handshake(self) -> None:
        commands = []
        if self.settings.password is not None:
            if self.settings.username is not None:
                commands.append(
                    encode_command(
                        "AUTH", self.settings.username, self.settings.password
                    )
                )
            else:
                commands.append(encode_command("AUTH", self.settings.password))
        if self.settings.db:
            commands.append(encode_command("SELECT", self.settings.db))
        if commands:
            for reply in await self.request(b"".join(commands), len(commands)):
                raise_for_reply(reply)

    # asyncio.Protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        pending = self._pending
        while True:
            try:
                reply = reader.gets()
            except ProtocolError as err:
                self._fail(err)
                return
            if reply is False:
                return
            if not pending:
                self._fail(ProtocolError("a reply arrived with no command waiting"))
                return
            batch = pending[0]
            replies = batch.replies
            replies.append(reply)
            if len(replies) == batch.expected:
                pending.popleft()
                if not batch.future.done():
                    batch.future.set_result(replies)

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f": {exc}" if exc else ""
        address = self.settings.address
        self._fail(RedisConnectionError(f"connection to {address} lost{reason}"))
        if not self._lost.done():
            self._lost.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # public surface

    @property
    def closed(self) -> bool:
        return self._closed_error is not None

    @property
    def write_paused(self) -> bool:
        """True while the socket's buffer is full (see `drain`)."""
        return self._write_paused

    @property
    def pending_batches(self) -> int:
        return len(self._pending)

    def request(
        self, commands: bytes, expected_replies: int
    ) -> asyncio.Future[list[Any]]:
        """Write encoded commands; the future gets their replies, in order."""
        if self._closed_error is not None:
            raise self._closed_error
        assert self._transport is not None
        future: asyncio.Future[list[Any]] = self._loop.create_future()
        self._pending.append(_Batch(future, expected_replies))
        self._transport.write(commands)
        return future

    async def drain(self) -> None:
        """Wait until the socket accepts more data (backpressure on writes)."""
        if self._write_paused and self._closed_error is None:
            if self._drain_waiter is None or self._drain_waiter.done():
                self._drain_waiter = self._loop.create_future()
            await self._drain_waiter

    async def execute(self, *args: bytes | str | int | float) -> Any:
        """Run one command and return its reply, raising on an error reply."""
        (reply,) = await self.request(encode_command(*args), 1)
        return raise_for_reply(reply)

    async def close(self) -> None:
        """Close the socket and wait until it is gone."""
        if self._closed_error is None:
            self._fail(ClosedError(f"connection to {self.settings.address} closed"))
        if self._transport is not None:
            self._transport.close()
            await self._lost

    def _fail(self, error: Exception) -> None:
        if self._closed_error is None:
            self._closed_error = error
        while self._pending:
            batch = self._pending.popleft()
            if not batch.future.done():
                batch.future.set_exception(error)
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()
