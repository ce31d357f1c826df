"""Producing: messages batched as they come, one pipelined write a batch.

Each message is one XADD with the fields `ts_us` (the producer's wall clock
in microseconds, for end-to-end latency), `payload` (the bytes as given) and,
when the message has one, `key`. A message with a key goes to the partition
its key hashes to; one without goes round robin.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from aioredismq.connection import Connection, is_reply_error, raise_for_reply
from aioredismq.errors import (
    CapacityTimeoutError,
    ClosedError,
    ConfigError,
    RedisConnectionError,
    ServerBusyError,
    check_wholes,
)
from aioredismq.keys import partition_for_key
from aioredismq.message import FIELD_KEY, encode_fields
from aioredismq.routing import Router, SingleNode
from aioredismq.topic import Topic

__all__ = ["Producer"]

logger = logging.getLogger(__name__)

RECONNECT_FIRST_S = 0.05
RECONNECT_MAX_S = 2.0

_TS_HEAD = b"$5\r\nts_us\r\n"
_PAYLOAD_HEAD = b"$7\r\npayload\r\n"
_KEY_HEAD = b"$3\r\nkey\r\n"
_AUTO_ID = b"$1\r\n*\r\n"


def _check_payload(payload: object) -> None:
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        kind = type(payload).__name__
        raise TypeError(
            f"a payload must be bytes, bytearray or memoryview, not {kind}"
            + (" (encode it first)" if isinstance(payload, str) else "")
        )


def _encoded_key(key: str | bytes) -> bytes:
    if isinstance(key, bytes):
        return key
    if isinstance(key, str):
        return key.encode()
    raise TypeError(f"a key must be str, bytes or None, not {type(key).__name__}")


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(data), data)


class Producer:
    """Sends messages to one topic over one connection.

    `send` queues a message and waits for the server's ack. Messages queued
    during one event-loop tick go out together, in pipelined writes of at
    most `batch_max` messages: a batch is written as soon as it is full, so
    the server stores one while this process encodes the next (with 100
    concurrent senders, 32 at a time gave twice the throughput of one write
    per tick, 1 KiB messages; `benchmarks/core_throughput.py`). All
    messages of a batch carry the same `ts_us`.
    `send_many` is the bulk form for callers that already hold a batch.
    Backpressure: with `max_in_flight` messages unacknowledged, `send` and
    `wait_for_capacity` wait instead of failing; with `capacity_timeout_s`
    set, a wait longer than that raises `CapacityTimeoutError` (the server
    answers, only more slowly than the senders send).

    Trimming rides on each XADD, approximately (`~`, whole radix-tree nodes,
    cheap): `maxlen_approx` keeps about that many entries per partition,
    `max_age_ms` drops entries older than that (`MINID`, since entry ids
    start with the server's milliseconds). Either one trims entries whether
    or not a group has consumed them; for "trim what every group has acked"
    see `aioredismq.topic.trim_acknowledged`.
    """

    def __init__(
        self,
        connection: Connection | Router,
        topic: Topic,
        *,
        max_in_flight: int = 100_000,
        capacity_timeout_s: float | None = None,
        maxlen_approx: int | None = None,
        max_age_ms: int | None = None,
        retries: int = 3,
        batch_max: int = 32,
    ) -> None:
        check_wholes(
            "producer",
            ("max_in_flight", max_in_flight, 1),
            ("batch_max", batch_max, 1),
            ("retries", retries, 0),
            ("maxlen_approx", maxlen_approx, 1),
            ("max_age_ms", max_age_ms, 1),
        )
        if capacity_timeout_s is not None and (
            isinstance(capacity_timeout_s, bool)
            or not isinstance(capacity_timeout_s, (int, float))
            or not capacity_timeout_s > 0
        ):
            raise ConfigError(
                "producer", "capacity_timeout_s", capacity_timeout_s, "> 0 or None"
            )
        if maxlen_approx is not None and max_age_ms is not None:
            raise ConfigError(
                "producer", "max_age_ms", max_age_ms, "give it or maxlen_approx"
            )
        # One server: everything goes down one connection, encoded as one
        # blob per batch. A cluster: each XADD is routed to its slot's node.
        self._router: Router | None = None
        if isinstance(connection, Connection):
            self.connection = connection
        elif isinstance(connection, SingleNode):
            self.connection = connection.connection
        else:
            self._router = connection
            self.connection = connection.connection_for_key(topic.stream_keys[0])
        self.topic = topic
        self.max_in_flight = max_in_flight
        self.capacity_timeout_s = capacity_timeout_s
        self.max_age_ms = max_age_ms
        self.retries = retries
        self._reconnecting = asyncio.Lock()
        # Connections this producer opened itself (on reconnect); it closes
        # them, while the one it was given belongs to the caller.
        self._opened: list[Connection] = []
        self._reopening: asyncio.Task[None] | None = None
        self._loop = asyncio.get_running_loop()
        self._in_flight = 0
        self._capacity_waiters: list[asyncio.Future[None]] = []
        self._next_partition = 0
        self._closed = False
        self._fixed_trim = b""
        if maxlen_approx is not None:
            self._fixed_trim = b"$6\r\nMAXLEN\r\n$1\r\n~\r\n" + _bulk(
                b"%d" % maxlen_approx
            )
        trim_args = 0 if maxlen_approx is None and max_age_ms is None else 3
        # Per partition, the encoded start of an XADD without / with a key:
        # array length (without headers), command and stream key.
        self._base_args = 7 + trim_args
        self._stream_parts = [
            b"$4\r\nXADD\r\n" + _bulk(stream.encode()) for stream in topic.stream_keys
        ]
        self._heads = [b"*%d\r\n" % self._base_args + p for p in self._stream_parts]
        self._keyed_heads = [
            b"*%d\r\n" % (self._base_args + 2) + p for p in self._stream_parts
        ]
        self.batch_max = batch_max
        self._partitions = topic.partitions
        # The batch `send` is gathering: encoded pieces, their streams (for a
        # cluster's routing) and one future per message.
        self._flush_due = False
        self._middle = b""
        self._queued: list[bytes] = []
        self._queued_streams: list[str] = []
        self._queued_futures: list[asyncio.Future[bytes]] = []

    @property
    def in_flight(self) -> int:
        """Messages written and not yet acknowledged."""
        return self._in_flight

    async def send(
        self,
        payload: bytes,
        key: str | bytes | None = None,
        headers: Mapping[str | bytes, str | bytes] | None = None,
    ) -> bytes:
        """Send one message; return its stream entry id once it is stored.

        If the connection is lost the producer reconnects, with back-off, and
        sends again, up to `retries` times; a server that answers it is busy
        (`ServerBusyError`) is asked again the same way. A message whose ack
        was lost with the connection may then be stored twice (at least
        once, never lost silently); the last failure is raised.
        """
        backoff_s = RECONNECT_FIRST_S
        for attempt in itertools.count():
            # Awaiting costs a coroutine per message; only do it when there
            # is something to wait for.
            if (
                self._closed
                or self._in_flight >= self.max_in_flight
                or self.connection.write_paused
            ):
                await self.wait_for_capacity()
            future: asyncio.Future[bytes] = self._loop.create_future()
            self._queue(future, payload, key, headers)
            try:
                return await future
            except (RedisConnectionError, ServerBusyError):
                # Lost with the connection, or refused by a server that may
                # take it a moment later (loading, running a script).
                if attempt >= self.retries or self._closed:
                    raise
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, RECONNECT_MAX_S)
            await self._reconnect()
        raise AssertionError("unreachable")

    async def _reconnect(self) -> None:
        # Concurrent senders that all saw the loss reconnect once, together.
        async with self._reconnecting:
            if self._router is None and self.connection.closed:
                settings = self.connection.settings
                try:
                    self.connection = await Connection.open(settings)
                    self._opened.append(self.connection)
                    logger.warning("producer reconnected to %s", settings.address)
                except RedisConnectionError as err:
                    logger.warning("producer cannot reconnect yet: %s", err)

    def send_many(
        self,
        payloads: Sequence[bytes],
        keys: Sequence[str | bytes | None] | None = None,
    ) -> asyncio.Future[list[Any]]:
        """Write a batch now; the future gets one reply per message.

        A reply is the entry id (bytes) or, for a message the server refused,
        an error value (test with `aioredismq.connection.is_reply_error`).
        All messages of a batch carry the same `ts_us`: they leave together.
        """
        if self._closed:
            raise ClosedError("producer is closed")
        count = len(payloads)
        if keys is not None and len(keys) != count:
            raise ValueError(f"{len(keys)} keys for {count} payloads; give one each")
        future: asyncio.Future[list[Any]]
        if not count:
            future = self._loop.create_future()
            future.set_result([])
            return future
        ts = b"%d" % (time.time_ns() // 1000)
        try:
            # Nothing is written unless the whole batch encodes.
            if self._router is not None:
                routed = self._encode_routed(payloads, keys, ts)
            else:
                commands = self._encode_batch(payloads, keys, ts)
        except TypeError:
            for payload in payloads:  # a bad payload's clear message...
                _check_payload(payload)
            raise  # ...or a bad key's, from `_encoded_key`
        if self._router is not None:
            future = asyncio.ensure_future(self._router.request_by_key(routed))
        else:
            try:
                future = self.connection.request(commands, count)
            except RedisConnectionError:
                self._reopen_later()
                raise
            future.add_done_callback(self._reopen_if_lost)
        self._in_flight += count
        future.add_done_callback(functools.partial(self._release, count))
        return future

    async def wait_for_capacity(self) -> None:
        """Wait while `max_in_flight` messages are unacknowledged, or the
        connection's write buffer is full; at most `capacity_timeout_s`."""
        if self._closed:
            raise ClosedError("producer is closed")
        if self.capacity_timeout_s is None:
            await self._wait_for_room()
            return
        try:
            async with asyncio.timeout(self.capacity_timeout_s):
                await self._wait_for_room()
        except TimeoutError:
            raise CapacityTimeoutError(
                f"{self.max_in_flight} messages still unacknowledged after "
                f"{self.capacity_timeout_s} s (capacity_timeout_s)"
            ) from None

    async def _wait_for_room(self) -> None:
        while self._in_flight >= self.max_in_flight:
            waiter = self._loop.create_future()
            self._capacity_waiters.append(waiter)
            await waiter
        if self._router is None:
            await self.connection.drain()

    def _trim(self) -> bytes:
        if self.max_age_ms is None:
            return self._fixed_trim
        oldest_ms = max(0, time.time_ns() // 1_000_000 - self.max_age_ms)
        return b"$5\r\nMINID\r\n$1\r\n~\r\n" + _bulk(b"%d" % oldest_ms)

    def _middle_for(self, ts: bytes) -> bytes:
        """What goes between an XADD's stream key and its payload's length:
        trimming, the auto id, the `ts_us` field, the payload's field name."""
        return self._trim() + _AUTO_ID + _TS_HEAD + _bulk(ts) + _PAYLOAD_HEAD

    def _partition(self, key: bytes | None) -> int:
        if key is None:
            index = self._next_partition
            self._next_partition = (index + 1) % self.topic.partitions
            return index
        return partition_for_key(key, self.topic.partitions)

    def _encode_routed(
        self,
        payloads: Sequence[bytes],
        keys: Sequence[str | bytes | None] | None,
        ts: bytes,
    ) -> list[tuple[str, bytes]]:
        """One XADD per message with its stream, for a cluster to route."""
        middle = self._middle_for(ts)
        routed = []
        for i, payload in enumerate(payloads):
            key = None if keys is None else keys[i]
            key_bytes = None if key is None else _encoded_key(key)
            partition = self._partition(key_bytes)
            encoded = self._encode_one(partition, payload, key_bytes, middle, None)
            routed.append((self.topic.stream_keys[partition], encoded))
        return routed

    def _encode_batch(
        self,
        payloads: Sequence[bytes],
        keys: Sequence[str | bytes | None] | None,
        ts: bytes,
    ) -> bytes:
        # Everything between the stream key and the payload's length is the
        # same for the whole batch: trimming, auto id, the timestamp field.
        middle = self._middle_for(ts)
        parts: list[bytes] = []
        append = parts.append
        if keys is None:
            heads = self._heads
            partitions = self.topic.partitions
            index = self._next_partition
            for payload in payloads:
                append(heads[index])
                append(middle)
                append(b"$%d\r\n%b\r\n" % (len(payload), payload))
                index += 1
                if index == partitions:
                    index = 0
            self._next_partition = index
            return b"".join(parts)
        for payload, key in zip(payloads, keys, strict=True):
            if key is None:
                append(self._heads[self._partition(None)])
                append(middle)
                append(b"$%d\r\n%b\r\n" % (len(payload), payload))
                continue
            key_bytes = _encoded_key(key)
            append(self._keyed_heads[self._partition(key_bytes)])
            append(middle)
            append(b"$%d\r\n%b\r\n" % (len(payload), payload))
            append(_KEY_HEAD)
            append(b"$%d\r\n%b\r\n" % (len(key_bytes), key_bytes))
        return b"".join(parts)

    def _encode_one(
        self,
        partition: int,
        payload: bytes,
        key: bytes | None,
        middle: bytes,
        headers: Mapping[str | bytes, str | bytes] | None,
    ) -> bytes:
        """One XADD to `partition`, with any key and headers; `middle` is
        what goes between the stream key and the payload (`_middle`)."""
        extra = encode_fields(headers)
        if key is not None:
            extra = [FIELD_KEY, key, *extra]
        parts = [
            b"*%d\r\n" % (self._base_args + len(extra)),
            self._stream_parts[partition],
            middle,
            _bulk(payload),
            *map(_bulk, extra),
        ]
        return b"".join(parts)

    def _queue(
        self,
        future: asyncio.Future[bytes],
        payload: bytes,
        key: str | bytes | None,
        headers: Mapping[str | bytes, str | bytes] | None,
    ) -> None:
        """Add one XADD to the batch being gathered; write the batch at once
        once it holds `batch_max` messages, else at the end of this tick."""
        # A value the batch's join would refuse fails this call alone, before
        # anything is queued, instead of the whole batch (keys and headers
        # are checked as the message is encoded, also before it is queued).
        if type(payload) is not bytes:
            _check_payload(payload)
        queued = self._queued
        futures = self._queued_futures
        if not futures:
            if not self._flush_due:
                self._flush_due = True
                self._loop.call_soon(self._flush_queued)
            # One timestamp per batch: its messages leave in one write.
            ts = b"%d" % (time.time_ns() // 1000)
            self._middle = self._middle_for(ts)
        if key is None and headers is None and self._router is None:
            # The common case in pieces: the payload is copied once, by the
            # batch's join.
            index = self._next_partition
            self._next_partition = index + 1 if index + 1 < self._partitions else 0
            queued += (
                self._heads[index],
                self._middle,
                b"$%d\r\n" % len(payload),
                payload,
                b"\r\n",
            )
        else:
            key_bytes = None if key is None else _encoded_key(key)
            partition = self._partition(key_bytes)
            queued.append(
                self._encode_one(partition, payload, key_bytes, self._middle, headers)
            )
            if self._router is not None:  # a cluster routes each by its key
                self._queued_streams.append(self.topic.stream_keys[partition])
        futures.append(future)
        self._in_flight += 1
        if len(futures) >= self.batch_max:
            self._write_queued()

    def _flush_queued(self) -> None:
        self._flush_due = False
        if self._queued_futures:
            self._write_queued()

    def _write_queued(self) -> None:
        queued, streams, futures = (
            self._queued,
            self._queued_streams,
            self._queued_futures,
        )
        self._queued, self._queued_streams, self._queued_futures = [], [], []
        try:
            if self._router is not None:
                pairs = list(zip(streams, queued, strict=True))
                batch: asyncio.Future[list[Any]] = asyncio.ensure_future(
                    self._router.request_by_key(pairs)
                )
            else:
                batch = self.connection.request(b"".join(queued), len(futures))
        except Exception as err:
            self._in_flight -= len(futures)
            for future in futures:
                if not future.done():
                    future.set_exception(err)
            self._wake_capacity_waiters()
            return
        batch.add_done_callback(functools.partial(self._release, len(futures)))
        batch.add_done_callback(functools.partial(_resolve, futures=futures))

    def _reopen_if_lost(self, batch: asyncio.Future[list[Any]]) -> None:
        if not batch.cancelled() and isinstance(
            batch.exception(), RedisConnectionError
        ):
            self._reopen_later()

    def _reopen_later(self) -> None:
        """Reopen a lost connection in the background (`send_many` does not
        retry: the caller decides whether a batch may be stored twice), so
        the caller's next batch finds it open again."""
        if self._closed or self._reopening is not None:
            return
        task = self._loop.create_task(self._reopen(), name="producer reopen")
        self._reopening = task

    async def _reopen(self) -> None:
        backoff_s = RECONNECT_FIRST_S
        try:
            while not self._closed and self.connection.closed:
                await self._reconnect()
                if self.connection.closed:
                    await asyncio.sleep(backoff_s)
                    backoff_s = min(backoff_s * 2, RECONNECT_MAX_S)
        finally:
            self._reopening = None

    def _release(self, count: int, batch: asyncio.Future[list[Any]]) -> None:
        self._in_flight -= count
        self._wake_capacity_waiters()

    def _wake_capacity_waiters(self) -> None:
        limit = 1 if self._closed else self.max_in_flight
        if self._capacity_waiters and self._in_flight < limit:
            waiters, self._capacity_waiters = self._capacity_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def close(self, timeout_s: float = 10.0) -> None:
        """Refuse new messages, wait up to `timeout_s` for those in flight to
        be acked, and close any connection the producer opened itself.

        Sends still unanswered then fail with `ClosedError` once their
        connection closes: the server may or may not have stored them.
        """
        self._closed = True
        if self._reopening is not None:
            self._reopening.cancel()
            await asyncio.gather(self._reopening, return_exceptions=True)
        try:
            async with asyncio.timeout(max(timeout_s, 0)):
                while self._in_flight > 0 and (
                    self._router is not None or not self.connection.closed
                ):
                    waiter = self._loop.create_future()
                    self._capacity_waiters.append(waiter)
                    await waiter
        except TimeoutError:
            logger.warning(
                "producer: %d messages not acknowledged within %s s; closing",
                self._in_flight, timeout_s,
            )  # fmt: skip
        opened, self._opened = self._opened, []
        for conn in opened:
            await conn.close()


def _resolve(
    batch: asyncio.Future[list[Any]], futures: list[asyncio.Future[bytes]]
) -> None:
    if batch.cancelled() or batch.exception() is not None:
        error = batch.exception() or ClosedError("send cancelled")
        for future in futures:
            if not future.done():
                future.set_exception(error)
        return
    for future, reply in zip(futures, batch.result(), strict=True):
        if future.done():
            continue
        if is_reply_error(reply):
            try:
                raise_for_reply(reply)
            except Exception as err:
                future.set_exception(err)
        else:
            future.set_result(reply)
