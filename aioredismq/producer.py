"""Producing: messages batched per event-loop tick, one round trip a batch.

Each message is one XADD with the fields `ts_us` (the producer's wall clock
in microseconds, for end-to-end latency), `payload` (the bytes as given) and,
when the message has one, `key`. A message with a key goes to the partition
its key hashes to; one without goes round robin.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Sequence
from typing import Any

from aioredismq.connection import Connection, is_reply_error, raise_for_reply
from aioredismq.errors import ClosedError, ConfigError
from aioredismq.keys import partition_for_key
from aioredismq.topic import Topic

__all__ = ["Producer"]

FIELD_TS = b"ts_us"
FIELD_PAYLOAD = b"payload"
FIELD_KEY = b"key"

_TS_HEAD = b"$5\r\nts_us\r\n"
_PAYLOAD_HEAD = b"$7\r\npayload\r\n"
_KEY_HEAD = b"$3\r\nkey\r\n"


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(data), data)


class Producer:
    """Sends messages to one topic over one connection.

    `send` queues a message and waits for the server's ack; every message
    queued during one event-loop tick goes out as one pipelined write.
    `send_many` is the bulk form for callers that already hold a batch.
    Backpressure: with `max_in_flight` messages unacknowledged, `send` and
    `wait_for_capacity` wait instead of failing.
    """

    def __init__(
        self,
        connection: Connection,
        topic: Topic,
        *,
        max_in_flight: int = 100_000,
        maxlen_approx: int | None = None,
    ) -> None:
        if max_in_flight < 1:
            raise ConfigError("producer", "max_in_flight", max_in_flight, ">= 1")
        if maxlen_approx is not None and maxlen_approx < 1:
            raise ConfigError("producer", "maxlen_approx", maxlen_approx, ">= 1")
        self.connection = connection
        self.topic = topic
        self.max_in_flight = max_in_flight
        self._loop = asyncio.get_running_loop()
        self._in_flight = 0
        self._capacity_waiters: list[asyncio.Future[None]] = []
        self._next_partition = 0
        self._closed = False
        # Per partition, the encoded start of an XADD without / with a key:
        # array length, command, stream key, optional trimming, auto id.
        trim = b""
        trim_args = 0
        if maxlen_approx is not None:
            trim = b"$6\r\nMAXLEN\r\n$1\r\n~\r\n" + _bulk(str(maxlen_approx).encode())
            trim_args = 3
        self._heads: list[bytes] = []
        self._keyed_heads: list[bytes] = []
        for stream in topic.stream_keys:
            body = b"$4\r\nXADD\r\n" + _bulk(stream.encode()) + trim + b"$1\r\n*\r\n"
            self._heads.append(b"*%d\r\n" % (7 + trim_args) + body)
            self._keyed_heads.append(b"*%d\r\n" % (9 + trim_args) + body)
        # Messages queued by `send` during the current loop tick.
        self._queued: list[bytes] = []
        self._queued_futures: list[asyncio.Future[bytes]] = []

    @property
    def in_flight(self) -> int:
        """Messages written and not yet acknowledged."""
        return self._in_flight

    async def send(self, payload: bytes, key: str | bytes | None = None) -> bytes:
        """Send one message; return its stream entry id once it is stored."""
        await self.wait_for_capacity()
        future: asyncio.Future[bytes] = self._loop.create_future()
        if not self._queued:
            self._loop.call_soon(self._flush_queued)
        self._queued.append(self.encode(payload, key, time.time_ns() // 1000))
        self._queued_futures.append(future)
        self._in_flight += 1
        return await future

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
        ts = b"%d" % (time.time_ns() // 1000)
        data = self._encode_batch(payloads, keys, ts)
        count = len(payloads)
        self._in_flight += count
        future = self.connection.request(data, count)
        future.add_done_callback(functools.partial(self._release, count))
        return future

    async def wait_for_capacity(self) -> None:
        """Wait while `max_in_flight` messages are unacknowledged."""
        if self._closed:
            raise ClosedError("producer is closed")
        while self._in_flight >= self.max_in_flight:
            waiter = self._loop.create_future()
            self._capacity_waiters.append(waiter)
            await waiter
        await self.connection.drain()

    def encode(self, payload: bytes, key: str | bytes | None, ts_us: int) -> bytes:
        """The XADD of one message, choosing its partition."""
        keys = None if key is None else [key]
        return self._encode_batch([payload], keys, b"%d" % ts_us)

    def _encode_batch(
        self,
        payloads: Sequence[bytes],
        keys: Sequence[str | bytes | None] | None,
        ts: bytes,
    ) -> bytes:
        ts_part = _TS_HEAD + _bulk(ts) + _PAYLOAD_HEAD
        parts: list[bytes] = []
        append = parts.append
        partitions = self.topic.partitions
        if keys is None:
            heads = self._heads
            index = self._next_partition
            for payload in payloads:
                append(heads[index])
                append(ts_part)
                append(b"$%d\r\n%b\r\n" % (len(payload), payload))
                index += 1
                if index == partitions:
                    index = 0
            self._next_partition = index
            return b"".join(parts)
        for payload, key in zip(payloads, keys, strict=True):
            if key is None:
                append(self._heads[self._next_partition])
                self._next_partition = (self._next_partition + 1) % partitions
                append(ts_part)
                append(b"$%d\r\n%b\r\n" % (len(payload), payload))
                continue
            key_bytes = key.encode() if isinstance(key, str) else key
            append(self._keyed_heads[partition_for_key(key_bytes, partitions)])
            append(ts_part)
            append(b"$%d\r\n%b\r\n" % (len(payload), payload))
            append(_KEY_HEAD)
            append(b"$%d\r\n%b\r\n" % (len(key_bytes), key_bytes))
        return b"".join(parts)

    def _flush_queued(self) -> None:
        data, futures = b"".join(self._queued), self._queued_futures
        self._queued, self._queued_futures = [], []
        try:
            batch = self.connection.request(data, len(futures))
        except Exception as err:
            self._in_flight -= len(futures)
            for future in futures:
                if not future.done():
                    future.set_exception(err)
            self._wake_capacity_waiters()
            return
        batch.add_done_callback(functools.partial(self._release, len(futures)))
        batch.add_done_callback(functools.partial(_resolve, futures=futures))

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

    async def close(self) -> None:
        """Refuse new messages and wait for those in flight to be acked."""
        self._closed = True
        while self._in_flight > 0 and not self.connection.closed:
            waiter = self._loop.create_future()
            self._capacity_waiters.append(waiter)
            await waiter


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
