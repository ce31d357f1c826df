"""The benchmark driver abstraction, after OpenMessaging Benchmark's driver API.

A driver connects the harness to one messaging system. The harness creates
topics, producers and consumers through it and never talks to the system
directly, so adding a system means adding a driver and a driver file naming
its class.

Two differences from OMB's Java interfaces, both for speed: each producer has
a batch form of `send_async` (`send_batch`) and each callback a batch form of
`message_received` (`messages_received`). Their default implementations fan
out to the single forms, so a driver only needs the single forms to work.
Timestamps are microseconds, not OMB's milliseconds, so end-to-end latencies
below a millisecond are kept.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BenchmarkConsumer",
    "BenchmarkDriver",
    "BenchmarkProducer",
    "ConsumerCallback",
    "ConsumerInfo",
    "ProducerInfo",
    "TopicInfo",
]


class ConsumerCallback(ABC):
    """What a consumer calls for every message it receives."""

    @abstractmethod
    def message_received(self, payload: bytes, publish_timestamp_us: int) -> None:
        """One message; `publish_timestamp_us` is the producer's wall clock."""

    def messages_received(
        self, payloads: Sequence[bytes], publish_timestamps_us: Sequence[int]
    ) -> None:
        """Several messages at once, in order."""
        for payload, timestamp_us in zip(payloads, publish_timestamps_us, strict=True):
            self.message_received(payload, timestamp_us)


class BenchmarkProducer(ABC):
    """Sends to one topic."""

    @abstractmethod
    async def send_async(self, key: str | None, payload: bytes) -> None:
        """Send one message; return once the system acknowledged it.

        Must not block the event loop while waiting for the acknowledgement.
        """

    def send_batch(
        self, keys: Sequence[str] | None, payloads: Sequence[bytes]
    ) -> asyncio.Future[int]:
        """Send several messages; the future gets how many of them failed.

        `keys` is None when no message has a key. The future completes when
        every message is acknowledged or has failed.
        """
        if keys is None:
            sends = [self.send_async(None, payload) for payload in payloads]
        else:
            sends = [
                self.send_async(key, payload)
                for key, payload in zip(keys, payloads, strict=True)
            ]
        gathered = asyncio.gather(*sends, return_exceptions=True)
        failed: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def count_failures(done: asyncio.Future[list[Any]]) -> None:
            results = done.result()
            failed.set_result(sum(isinstance(r, BaseException) for r in results))

        gathered.add_done_callback(count_failures)
        return failed

    @abstractmethod
    async def close(self) -> None:
        """Wait for sends in flight, then release the producer."""


class BenchmarkConsumer(ABC):
    """Receives from one topic in one subscription, pushing to a callback."""

    def pause(self) -> None:
        """Stop fetching until `resume`; the default fetches on regardless."""

    def resume(self) -> None:
        """Fetch again after `pause`."""

    @abstractmethod
    async def close(self) -> None:
        """Stop receiving and release the consumer."""


@dataclass(frozen=True, slots=True)
class TopicInfo:
    topic: str
    partitions: int


@dataclass(frozen=True, slots=True)
class ProducerInfo:
    id: int
    topic: str


@dataclass(frozen=True, slots=True)
class ConsumerInfo:
    id: int
    topic: str
    subscription_name: str
    callback: ConsumerCallback


class BenchmarkDriver(ABC):
    """One messaging system, seen by the harness.

    Consumers sharing a subscription name on a topic share its messages
    (queue semantics); each subscription gets every message (pub/sub).
    """

    @abstractmethod
    async def initialize(self, config: Mapping[str, Any], source: str) -> None:
        """Connect using the whole driver file's content; `source` names it."""

    @property
    @abstractmethod
    def topic_name_prefix(self) -> str:
        """Start of every topic name the harness makes for this driver."""

    @abstractmethod
    async def create_topic(self, topic: str, partitions: int) -> None:
        """Create a topic; return once it exists."""

    async def create_topics(self, topics: Sequence[TopicInfo]) -> None:
        await asyncio.gather(
            *(self.create_topic(t.topic, t.partitions) for t in topics)
        )

    @abstractmethod
    async def create_producer(self, topic: str) -> BenchmarkProducer:
        """A producer bound to one topic."""

    async def create_producers(
        self, producers: Sequence[ProducerInfo]
    ) -> list[BenchmarkProducer]:
        """Producers in the order given."""
        return list(
            await asyncio.gather(*(self.create_producer(p.topic) for p in producers))
        )

    @abstractmethod
    async def create_consumer(
        self, topic: str, subscription_name: str, callback: ConsumerCallback
    ) -> BenchmarkConsumer:
        """A consumer of one topic in one subscription."""

    async def create_consumers(
        self, consumers: Sequence[ConsumerInfo]
    ) -> list[BenchmarkConsumer]:
        """Consumers in the order given."""
        return list(
            await asyncio.gather(
                *(
                    self.create_consumer(c.topic, c.subscription_name, c.callback)
                    for c in consumers
                )
            )
        )

    async def delete_topics(self, topics: Sequence[str]) -> None:
        """Remove what a run created; the default leaves everything in place."""

    async def describe(self) -> dict[str, Any]:
        """Facts about the system for the result's sidecar (e.g. its version)."""
        return {}

    @abstractmethod
    async def close(self) -> None:
        """Release everything; producers and consumers are closed first."""
