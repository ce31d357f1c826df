"""A driver that keeps messages in process memory.

For testing the harness without a server: one worker process holds both the
producers and the consumers, a send is acknowledged on the next loop tick,
and every subscription of a topic gets every message, shared round robin
between that subscription's consumers. Nothing is persisted; a consumer
created after a message was sent does not see it.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Mapping, Sequence
from typing import Any

from driver.base import (
    BenchmarkConsumer,
    BenchmarkDriver,
    BenchmarkProducer,
    ConsumerCallback,
)

__all__ = ["MemoryDriver"]


class _Subscription:
    def __init__(self) -> None:
        self.consumers: list[MemoryConsumer] = []
        self._turn = itertools.count()

    def deliver(self, payloads: Sequence[bytes], stamp_us: int) -> None:
        live = [c for c in self.consumers if not c.closed]
        if not live:
            return
        consumer = live[next(self._turn) % len(live)]
        consumer.deliver(payloads, stamp_us)


class MemoryConsumer(BenchmarkConsumer):
    def __init__(self, callback: ConsumerCallback) -> None:
        self.callback = callback
        self.closed = False
        self._paused: list[tuple[Sequence[bytes], int]] | None = None

    def deliver(self, payloads: Sequence[bytes], stamp_us: int) -> None:
        if self._paused is not None:
            self._paused.append((payloads, stamp_us))
            return
        self.callback.messages_received(payloads, [stamp_us] * len(payloads))

    def pause(self) -> None:
        if self._paused is None:
            self._paused = []

    def resume(self) -> None:
        held, self._paused = self._paused or [], None
        for payloads, stamp_us in held:
            self.deliver(payloads, stamp_us)

    async def close(self) -> None:
        self.closed = True


class MemoryProducer(BenchmarkProducer):
    def __init__(self, subscriptions: dict[str, _Subscription]) -> None:
        # The topic's own table, so subscriptions added later are seen too.
        self._subscriptions = subscriptions
        self._loop = asyncio.get_running_loop()

    async def send_async(self, key: str | None, payload: bytes) -> None:
        await self.send_batch(None if key is None else [key], [payload])

    def send_batch(
        self, keys: Sequence[str] | None, payloads: Sequence[bytes]
    ) -> asyncio.Future[int]:
        stamp_us = time.time_ns() // 1000
        for subscription in list(self._subscriptions.values()):
            subscription.deliver(list(payloads), stamp_us)
        acked: asyncio.Future[int] = self._loop.create_future()
        self._loop.call_soon(acked.set_result, 0)
        return acked

    async def close(self) -> None:
        pass


class MemoryDriver(BenchmarkDriver):
    def __init__(self) -> None:
        self._topics: dict[str, dict[str, _Subscription]] = {}

    async def initialize(self, config: Mapping[str, Any], source: str) -> None:
        pass

    @property
    def topic_name_prefix(self) -> str:
        return "memory-topic"

    async def create_topic(self, topic: str, partitions: int) -> None:
        self._topics.setdefault(topic, {})

    async def create_producer(self, topic: str) -> BenchmarkProducer:
        return MemoryProducer(self._topics.setdefault(topic, {}))

    async def create_consumer(
        self, topic: str, subscription_name: str, callback: ConsumerCallback
    ) -> BenchmarkConsumer:
        subscriptions = self._topics.setdefault(topic, {})
        subscription = subscriptions.setdefault(subscription_name, _Subscription())
        consumer = MemoryConsumer(callback)
        subscription.consumers.append(consumer)
        return consumer

    async def delete_topics(self, topics: Sequence[str]) -> None:
        for topic in topics:
            self._topics.pop(topic, None)

    async def describe(self) -> dict[str, Any]:
        return {"server": "memory", "version": "0"}

    async def close(self) -> None:
        self._topics.clear()
