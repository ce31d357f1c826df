"""A driver that keeps messages in process memory.

For testing the harness without a server: one worker process holds both the
producers and the consumers, a send is acknowledged on the next loop tick,
and every subscription of a topic gets every message, shared round robin
between that subscription's consumers. Nothing is persisted; a consumer
created after a message was sent does not see it.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import time
from collections.abc import Mapping, Sequence
from typing import Any

from aioredismq.errors import DriverConfigError
from aioredismq.tasks import cancel_and_wait
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
    """Delivers at once, or at most `rate_per_s` messages a second.

    Messages wait in a queue while the consumer is paused or throttled, as
    they would wait in a stream; none is dropped.
    """

    def __init__(self, callback: ConsumerCallback, rate_per_s: float | None) -> None:
        self.callback = callback
        self.closed = False
        self.rate_per_s = rate_per_s
        self._queue: collections.deque[tuple[bytes, int]] = collections.deque()
        self._paused = False
        self._pump: asyncio.Task[None] | None = None
        if rate_per_s is not None:
            self._pump = asyncio.create_task(self._deliver_throttled())

    def deliver(self, payloads: Sequence[bytes], stamp_us: int) -> None:
        if self._paused or self.rate_per_s is not None:
            self._queue.extend((payload, stamp_us) for payload in payloads)
            return
        self.callback.messages_received(payloads, [stamp_us] * len(payloads))

    async def _deliver_throttled(self) -> None:
        assert self.rate_per_s is not None
        tick_s = 0.01
        allowance = 0.0
        last = time.monotonic()
        while True:
            await asyncio.sleep(tick_s)
            now = time.monotonic()
            # Credit the time that really passed: sleeps run long.
            elapsed_s, last = now - last, now
            if self._paused:
                continue
            allowance = min(allowance + self.rate_per_s * elapsed_s, self.rate_per_s)
            count = min(int(allowance), len(self._queue))
            if count:
                allowance -= count
                batch = [self._queue.popleft() for _ in range(count)]
                self.callback.messages_received(
                    [p for p, _ in batch], [t for _, t in batch]
                )

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False
        if self.rate_per_s is None and self._queue:
            held = list(self._queue)
            self._queue.clear()
            self.callback.messages_received([p for p, _ in held], [t for _, t in held])

    async def close(self) -> None:
        self.closed = True
        await cancel_and_wait(self._pump)


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
    """Driver file keys: `consumeRatePerS`, a per-consumer delivery limit
    (unset: deliver at once), to stand in for a slow consumer."""

    def __init__(self) -> None:
        self._topics: dict[str, dict[str, _Subscription]] = {}
        self._consume_rate_per_s: float | None = None

    async def initialize(self, config: Mapping[str, Any], source: str) -> None:
        rate = config.get("consumeRatePerS")
        if rate is not None and (
            isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0
        ):
            raise DriverConfigError(source, "consumeRatePerS", rate, "expected > 0")
        self._consume_rate_per_s = None if rate is None else float(rate)

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
        consumer = MemoryConsumer(callback, self._consume_rate_per_s)
        subscription.consumers.append(consumer)
        return consumer

    async def delete_topics(self, topics: Sequence[str]) -> None:
        for topic in topics:
            for subscription in self._topics.pop(topic, {}).values():
                for consumer in subscription.consumers:
                    await consumer.close()

    async def describe(self) -> dict[str, Any]:
        return {"server": "memory", "version": "0"}

    async def close(self) -> None:
        await self.delete_topics(list(self._topics))
