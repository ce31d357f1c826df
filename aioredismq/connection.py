"""One pipelined RESP2 connection, with commands encoded by hand.

redis-py spends most of its per-command time in Python bookkeeping around
each command of a pipeline. Here a batch of commands is one `bytes` written in
one call, and the replies are parsed by hiredis's C reader straight from
`data_received` (or by `aioredismq.resp`'s pure-Python one, when hiredis is
not installed or `parser="python"` asks for it); each batch completes one
future with the list of its replies. That is what makes the producer and
consumer hot paths cheap.

While it parses received bytes, a connection holds off the garbage
collector's automatic runs (and only those: the collector is enabled again
before `data_received` returns, and left alone if it was off). A read of
thousands of entries makes two lists per entry; a collection run in the
middle of building them would move the half-built reply into an older
generation, where it counts towards the next full collection, which walks
every object of the process. Nothing but the parser runs in that window,
and a batch's `convert` (see `request`), which can turn such a reply into a
few flat lists before the collector sees it, and before the next reply's
objects are made (which then reuse the memory just freed, still in cache).
For the same reason, while a single batch is waiting, bytes that do not end
a reply (every RESP reply ends with CR LF) are only buffered: the server
sends a large reply in many pieces, and parsing each as it comes would keep
a half-built reply alive across many turns of the event loop. With one
batch waiting, no reply can complete any sooner that way.

With `socket_timeout_s` set, a reply has that long to start arriving, counted
from when its batch reaches the head of the queue or from the last bytes
received, whichever is later; a blocking read (`BLOCK ms`) gets its block
time on top, and `BLOCK 0` waits for ever. One timer per connection, re-armed
only when it fires, watches the oldest batch; nothing is scheduled per
request, and a batch is searched for a BLOCK option only once its reply is
later than the timeout. A reply that misses its deadline fails every waiting
batch with `ReplyTimeoutError` and closes the connection, since the replies
still on their way could no longer be matched to their commands.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal, cast
from urllib.parse import parse_qsl, unquote, urlsplit

from aioredismq import resp
from aioredismq.errors import (
    ClosedError,
    ConfigError,
    ProtocolError,
    RedisConnectionError,
    ReplyTimeoutError,
    ServerUnavailableError,
    check_misspelt_keys,
    check_whole,
    reply_error,
)

try:
    import hiredis
except ImportError:  # the pure-Python reader serves instead, more slowly
    hiredis = None  # type: ignore[assignment]

__all__ = [
    "Connection",
    "ConnectionSettings",
    "block_wait_s",
    "encode_command",
    "is_reply_error",
    "raise_for_reply",
]

logger = logging.getLogger(__name__)

DEFAULT_PORT = 6379

Parser = Literal["hiredis", "python"]
PARSERS: tuple[Parser, ...] = ("hiredis", "python")
#: Query parameters `from_url` reads (redis-py's names; timeouts in seconds).
URL_OPTIONS = (
    "socket_timeout",
    "client_name",
    "ssl_ca_certs",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_cert_reqs",
)
#: `ssl_cert_reqs` values: "none" skips checking the server's certificate.
CERT_REQS = ("required", "optional", "none")


class _ErrorReply(Exception):
    """What the reply reader hands back, as a value, for an error reply."""


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    """Where a server is, how to log in to it, and how long to wait.

    `socket_timeout_s`: how long a reply may take to start arriving (None,
    the default: wait for ever, as redis-py does). Blocking reads get their
    block time on top, so they never time out early. `parser`: "hiredis"
    (the C reader; the pure-Python one is used anyway when hiredis is not
    installed) or "python". `client_name`: set on every connection (CLIENT
    SETNAME), so `CLIENT LIST` tells which service a connection belongs to.

    TLS (`tls`, or a `rediss://` URL): the server's certificate is checked
    against `tls_ca_file` (PEM; default: the system's trusted authorities)
    and its host name, unless `tls_verify` is False (a development server
    with a self-signed certificate). `tls_cert_file` and `tls_key_file` give
    a client certificate for servers that ask for one (`tls-auth-clients`).
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    username: str | None = None
    password: str | None = None
    db: int = 0
    tls: bool = False
    connect_timeout_s: float = 5.0
    socket_timeout_s: float | None = None
    parser: Parser = "hiredis"
    client_name: str | None = None
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_verify: bool = True

    def __post_init__(self) -> None:
        port = self.port
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigError("connection", "port", port, "expected 1-65535")
        check_whole("connection", "db", self.db, 0)
        timeout_s = self.socket_timeout_s
        if timeout_s is not None and not (
            isinstance(timeout_s, int | float) and 0 < timeout_s < float("inf")
        ):
            allowed = "expected a number of seconds > 0, or None to wait for ever"
            raise ConfigError("connection", "socket_timeout_s", timeout_s, allowed)
        if self.parser not in PARSERS:
            allowed = f"expected one of {', '.join(PARSERS)}"
            raise ConfigError("connection", "parser", self.parser, allowed)
        name = self.client_name
        if name is not None and not (name.isprintable() and " " not in name):
            allowed = "expected printable characters and no spaces"
            raise ConfigError("connection", "client_name", name, allowed)
        if self.tls_key_file is not None and self.tls_cert_file is None:
            allowed = "a key file goes with tls_cert_file, which is not set"
            raise ConfigError("connection", "tls_key_file", self.tls_key_file, allowed)

    def tls_context(self) -> ssl.SSLContext | None:
        """The TLS context connections use; None without TLS.

        Raises ConfigError naming the setting whose file cannot be loaded.
        """
        if not self.tls:
            return None
        try:
            context = ssl.create_default_context(cafile=self.tls_ca_file)
        except (OSError, ssl.SSLError) as err:
            allowed = f"expected a readable PEM file of CA certificates ({err})"
            raise ConfigError(
                "connection", "tls_ca_file", self.tls_ca_file, allowed
            ) from err
        if not self.tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.tls_cert_file is not None:
            try:
                context.load_cert_chain(self.tls_cert_file, self.tls_key_file)
            except (OSError, ssl.SSLError) as err:
                allowed = f"expected a readable PEM certificate and its key ({err})"
                raise ConfigError(
                    "connection", "tls_cert_file", self.tls_cert_file, allowed
                ) from err
        return context

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> ConnectionSettings:
        """Parse `redis://[user[:password]@]host[:port][/db][?options]` (or
        `rediss://`); options are `socket_timeout` (seconds), `client_name`,
        and for TLS redis-py's `ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile`
        and `ssl_cert_reqs` (`none` turns certificate checks off). Keyword
        overrides win over the URL."""
        if not isinstance(url, str):
            allowed = "expected a str such as redis://host:6379"
            raise ConfigError("url", None, url, allowed)
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            allowed = "expected redis://host:port or rediss://host:port"
            raise ConfigError("url", None, url, allowed)
        db_text = parts.path.lstrip("/") or "0"
        if not db_text.isdigit():
            raise ConfigError("url", "database", db_text, "expected an integer")
        try:
            port = DEFAULT_PORT if parts.port is None else parts.port
        except ValueError as err:
            raise ConfigError("url", "port", url, "expected 1-65535") from err
        if port == 0:  # an address to listen on, never one to connect to
            raise ConfigError("url", "port", url, "expected 1-65535")
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        check_misspelt_keys("url", query, URL_OPTIONS)
        timeout_s: float | None = None
        if "socket_timeout" in query:
            text = query["socket_timeout"]
            try:
                timeout_s = float(text)
            except ValueError:
                timeout_s = -1.0
            if not 0 < timeout_s < float("inf"):
                allowed = "expected a number of seconds > 0"
                raise ConfigError("url", "socket_timeout", text, allowed)
        cert_reqs = query.get("ssl_cert_reqs", "required")
        if cert_reqs not in CERT_REQS:
            allowed = f"expected one of {', '.join(CERT_REQS)}"
            raise ConfigError("url", "ssl_cert_reqs", cert_reqs, allowed)
        settings = cls(
            host=parts.hostname or "127.0.0.1",
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            db=int(db_text),
            tls=parts.scheme == "rediss",
            socket_timeout_s=timeout_s,
            client_name=query.get("client_name"),
            tls_ca_file=query.get("ssl_ca_certs"),
            tls_cert_file=query.get("ssl_certfile"),
            tls_key_file=query.get("ssl_keyfile"),
            tls_verify=cert_reqs != "none",
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
    return isinstance(reply, _ErrorReply)


def raise_for_reply(reply: Any) -> Any:
    """Return `reply`, or raise the matching error if it is an error reply."""
    if isinstance(reply, _ErrorReply):
        raise reply_error(str(reply))
    return reply


def _reply_reader(parser: Parser) -> Any:
    if parser == "hiredis" and hiredis is not None:
        return hiredis.Reader(protocolError=ProtocolError, replyError=_ErrorReply)
    return resp.Reader(protocolError=ProtocolError, replyError=_ErrorReply)


# How `encode_command` writes a BLOCK option, in either case, up to the
# length of the bulk string that follows it.
_BLOCK_WORDS = (b"$5\r\nBLOCK\r\n$", b"$5\r\nblock\r\n$")


def block_wait_s(commands: bytes) -> float | None:
    """How long the blocking reads among `commands` may wait on the server.

    0.0 when none blocks; None when one waits for ever (`BLOCK 0`). Only the
    `BLOCK ms` option of XREAD and XREADGROUP is recognised: BLPOP and the
    like, which the library never sends, get no extra time, so with a socket
    timeout shorter than their wait they time out (recognising them would
    mean finding each one's timeout argument). Bytes inside a value that
    happen to spell an encoded BLOCK option can only lengthen or lift a
    deadline, never shorten one.
    """
    wait_s = 0.0
    for word in _BLOCK_WORDS:
        at = commands.find(word)
        while at != -1:
            # `$<n>\r\n<ms>\r\n` follows the option name.
            head = at + len(word)
            size_end = commands.find(b"\r\n", head, head + 21)
            if size_end != -1 and commands[head:size_end].isdigit():
                start = size_end + 2
                value = commands[start : start + int(commands[head:size_end])]
                if value.isdigit():
                    if int(value) == 0:
                        return None
                    wait_s += int(value) / 1000
            at = commands.find(word, head)
    return wait_s


#: Turns each reply of a batch into what its future gets (see `request`).
Convert = Callable[[Any], Any]


class _Batch:
    __slots__ = (
        "future",
        "expected",
        "replies",
        "wait_s",
        "commands",
        "convert",
        "convert_error",
    )

    def __init__(
        self,
        future: asyncio.Future[list[Any]],
        expected: int,
        commands: bytes | None = None,
        convert: Convert | None = None,
    ) -> None:
        self.future = future
        self.expected = expected
        self.replies: list[Any] = []
        #: Server-side wait allowed on top of the socket timeout (None: for
        #: ever); 0.0 until `commands`, kept only for that, have been read.
        self.wait_s: float | None = 0.0
        self.commands = commands
        self.convert = convert
        self.convert_error: Exception | None = None


class Connection(asyncio.Protocol):
    """A pipelined connection: write batches of commands, await their replies.

    Error replies come back inside the reply list as values (check them with
    `raise_for_reply`), so one bad command does not hide the others' results.
    Losing the connection, or a reply later than `socket_timeout_s` allows,
    fails every batch still waiting.
    """

    def __init__(self, settings: ConnectionSettings) -> None:
        self.settings = settings
        self._loop = asyncio.get_running_loop()
        self._reader = _reply_reader(settings.parser)
        self._timeout_s = settings.socket_timeout_s
        # Reply deadlines (only with a socket timeout): when the oldest batch
        # began to wait, or bytes last arrived; and the one deadline timer.
        self._progress_at = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._pending: deque[_Batch] = deque()
        # The last two bytes received (whether they end a reply), and what
        # was received and not parsed yet.
        self._tail = b""
        self._held: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self._closed_error: Exception | None = None
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._lost = self._loop.create_future()

    @classmethod
    async def open(cls, settings: ConnectionSettings) -> Connection:
        """Connect, log in and select the database."""
        loop = asyncio.get_running_loop()
        tls_context = settings.tls_context()
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
        if self.settings.client_name is not None:
            commands.append(
                encode_command("CLIENT", "SETNAME", self.settings.client_name)
            )
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
        # See the module's docstring; measured, this saves a fifth of the
        # full collections while consuming. Known limit: the switch is
        # process-wide, so a thread that turns the collector off during
        # these microseconds finds it on again afterwards; only a pause
        # scoped to this thread (CPython has none) would avoid that.
        collecting = gc.isenabled()
        if collecting:
            gc.disable()
        try:
            self._parse(data)
        finally:
            if collecting:
                gc.enable()

    def _parse(self, data: bytes) -> None:
        pending = self._pending
        if self._timeout_s is not None:
            self._progress_at = self._loop.time()
        tail = data[-2:] if len(data) > 1 else self._tail[-1:] + data
        self._tail = tail
        if tail != b"\r\n" and len(pending) == 1:
            # More of the one awaited batch's replies must come (see the
            # module's docstring): parse once they have.
            self._held.append(data)
            if self._timer is None and self._timeout_s is not None:
                self._arm()
            return
        if self._held:
            chunks, self._held = self._held, []
            chunks.append(data)
        else:
            chunks = [data]
        # Fed as received, not joined: the reader then never holds more than
        # a piece, and never moves the rest of a big buffer along after each
        # reply it takes from the front.
        for chunk in chunks:
            if not self._take_replies(chunk):
                return
        if self._timer is None and self._timeout_s is not None:
            self._arm()  # the next batch waits behind a BLOCK 0 read

    def _take_replies(self, chunk: bytes) -> bool:
        """Feed `chunk` and complete the batches whose replies are all in;
        False once the connection has failed."""
        reader = self._reader
        reader.feed(chunk)
        pending = self._pending
        while True:
            try:
                reply = reader.gets()
            except ProtocolError as err:
                self._fail(err)
                return False
            if reply is False:
                return True
            if not pending:
                self._fail(ProtocolError("a reply arrived with no command waiting"))
                return False
            batch = pending[0]
            replies = batch.replies
            if batch.convert is not None and batch.convert_error is None:
                try:
                    reply = batch.convert(reply)
                except Exception as err:  # a bug there fails its batch only
                    batch.convert_error = err
            replies.append(reply)
            if len(replies) == batch.expected:
                pending.popleft()
                if batch.future.done():
                    continue
                if batch.convert_error is not None:
                    batch.future.set_exception(batch.convert_error)
                    continue
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
        self, commands: bytes, expected_replies: int, convert: Convert | None = None
    ) -> asyncio.Future[list[Any]]:
        """Write encoded commands; the future gets their replies, in order.

        `convert`, if given, is called with each reply as soon as it is
        parsed, with the garbage collector still held off, and the future
        gets what it returns instead (or, once the batch is complete, the
        first error it raised). It must be quick and call no application
        code.
        """
        if self._closed_error is not None:
            raise self._closed_error
        assert self._transport is not None
        future: asyncio.Future[list[Any]] = self._loop.create_future()
        if not expected_replies:
            # Nothing to wait for; queued, it would hold up every later batch.
            future.set_result([])
            return future
        if self._timeout_s is None:
            self._pending.append(_Batch(future, expected_replies, None, convert))
        else:
            if not self._pending:
                self._progress_at = self._loop.time()
            # The commands are searched for a BLOCK option only if the reply
            # is late: scanning every batch would cost a producer a third
            # more CPU per message.
            self._pending.append(_Batch(future, expected_replies, commands, convert))
            if self._timer is None:
                self._arm()
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

    def _arm(self) -> None:
        """Set the deadline timer for the oldest batch, unless it waits for ever."""
        if self._timer is not None or not self._pending or self._closed_error:
            return
        wait_s = self._pending[0].wait_s
        if wait_s is None or self._timeout_s is None:
            return  # the reply to that batch re-arms for the next one
        deadline = self._progress_at + self._timeout_s + wait_s
        self._timer = self._loop.call_at(deadline, self._on_deadline)

    def _on_deadline(self) -> None:
        self._timer = None
        if not self._pending or self._closed_error or self._timeout_s is None:
            return
        head = self._pending[0]
        if head.commands is not None:
            head.wait_s = block_wait_s(head.commands)
            head.commands = None
        wait_s = head.wait_s
        if wait_s is None:
            return
        # Replies that arrived meanwhile moved the deadline: look again then.
        late_s = self._loop.time() - (self._progress_at + self._timeout_s + wait_s)
        if late_s < -0.001:
            self._arm()
            return
        address = self.settings.address
        self._fail(
            ReplyTimeoutError(
                f"no reply from {address} within socket_timeout_s="
                f"{self._timeout_s:g}; connection closed"
            )
        )

    def _fail(self, error: Exception) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
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
