"""What the coordinator asks of a worker, and the stats a worker returns.

The shape follows OMB's `Worker` interface and its HTTP endpoints, so a
worker in another process (and later on another host) is just another
transport for the same calls. Histograms travel as base64 strings of
HdrHistogram's compressed V2 encoding, as in OMB.
"""

from __future__ import annotations

import base64
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runner.workload import KeyDistributorType

__all__ = [
    "CountersStats",
    "CumulativeLatencies",
    "DriverSpec",
    "PeriodStats",
    "ProducerWorkAssignment",
    "TopicSubscription",
    "Worker",
    "random_suffix",
]


@dataclass(frozen=True, slots=True)
class DriverSpec:
    """A driver file's content, with where it came from."""

    name: str
    driver_class: str
    config: Mapping[str, Any]
    source: str


@dataclass(frozen=True, slots=True)
class TopicSubscription:
    topic: str
    subscription: str


@dataclass(frozen=True, slots=True)
class ProducerWorkAssignment:
    payloads: Sequence[bytes]
    publish_rate_per_s: float
    key_distributor: KeyDistributorType


@dataclass(slots=True)
class CountersStats:
    """Cumulative counts since the last `stop_all`."""

    messages_sent: int = 0
    messages_received: int = 0
    message_send_errors: int = 0

    def __add__(self, other: CountersStats) -> CountersStats:
        return CountersStats(
            self.messages_sent + other.messages_sent,
            self.messages_received + other.messages_received,
            self.message_send_errors + other.message_send_errors,
        )


@dataclass(slots=True)
class PeriodStats:
    """Counts and latency histograms since the previous read."""

    messages_sent: int = 0
    message_send_errors: int = 0
    bytes_sent: int = 0
    messages_received: int = 0
    bytes_received: int = 0
    total_messages_sent: int = 0
    total_message_send_errors: int = 0
    total_messages_received: int = 0
    publish_latency: list[str] = field(default_factory=list)
    publish_delay_latency: list[str] = field(default_factory=list)
    end_to_end_latency: list[str] = field(default_factory=list)

    def __add__(self, other: PeriodStats) -> PeriodStats:
        return PeriodStats(
            self.messages_sent + other.messages_sent,
            self.message_send_errors + other.message_send_errors,
            self.bytes_sent + other.bytes_sent,
            self.messages_received + other.messages_received,
            self.bytes_received + other.bytes_received,
            self.total_messages_sent + other.total_messages_sent,
            self.total_message_send_errors + other.total_message_send_errors,
            self.total_messages_received + other.total_messages_received,
            self.publish_latency + other.publish_latency,
            self.publish_delay_latency + other.publish_delay_latency,
            self.end_to_end_latency + other.end_to_end_latency,
        )


@dataclass(slots=True)
class CumulativeLatencies:
    """Latency histograms since the last reset, plus clamped-sample counts.

    Each histogram field is a list of encoded histograms, one per worker,
    merged by whoever reads them.
    """

    publish_latency: list[str] = field(default_factory=list)
    publish_delay_latency: list[str] = field(default_factory=list)
    end_to_end_latency: list[str] = field(default_factory=list)
    overflow_samples: dict[str, int] = field(default_factory=dict)
    negative_samples: dict[str, int] = field(default_factory=dict)

    def __add__(self, other: CumulativeLatencies) -> CumulativeLatencies:
        def add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
            return {k: a.get(k, 0) + b.get(k, 0) for k in a.keys() | b.keys()}

        return CumulativeLatencies(
            self.publish_latency + other.publish_latency,
            self.publish_delay_latency + other.publish_delay_latency,
            self.end_to_end_latency + other.end_to_end_latency,
            add(self.overflow_samples, other.overflow_samples),
            add(self.negative_samples, other.negative_samples),
        )


def random_suffix() -> str:
    """OMB's random part of topic and subscription names: 5 random bytes,
    base64url without padding (7 characters)."""
    return base64.urlsafe_b64encode(os.urandom(5)).decode().rstrip("=")


class Worker(ABC):
    """One place that holds producers and consumers (OMB's `Worker`)."""

    @property
    @abstractmethod
    def id(self) -> str: ...

    @abstractmethod
    async def initialize_driver(self, spec: DriverSpec) -> None: ...

    @abstractmethod
    async def create_topics(self, topics: int, partitions_per_topic: int) -> list[str]:
        """Create topics named after the driver's prefix; return their names."""

    @abstractmethod
    async def create_producers(self, topics: Sequence[str]) -> None:
        """One producer per entry (a topic may repeat)."""

    @abstractmethod
    async def create_consumers(
        self, assignment: Sequence[TopicSubscription]
    ) -> None: ...

    @abstractmethod
    async def probe_producers(self) -> None:
        """Every producer sends one small message (the readiness probe)."""

    @abstractmethod
    async def start_load(self, assignment: ProducerWorkAssignment) -> None: ...

    @abstractmethod
    async def adjust_publish_rate(self, publish_rate_per_s: float) -> None: ...

    @abstractmethod
    async def pause_consumers(self) -> None: ...

    @abstractmethod
    async def resume_consumers(self) -> None: ...

    @abstractmethod
    async def get_counters_stats(self) -> CountersStats: ...

    @abstractmethod
    async def get_period_stats(self) -> PeriodStats: ...

    @abstractmethod
    async def get_cumulative_latencies(self) -> CumulativeLatencies: ...

    @abstractmethod
    async def reset_stats(self) -> None:
        """Clear the latency recorders only (counters keep running)."""

    @abstractmethod
    async def stop_producers(self) -> None:
        """Stop sending; return once every message sent is acknowledged."""

    @abstractmethod
    async def stop_load(self) -> None:
        """Stop sending; close producers and consumers, keep the driver."""

    @abstractmethod
    async def stop_all(self) -> None:
        """Stop load, close producers, consumers and the driver, reset stats."""

    @abstractmethod
    async def delete_topics(self, topics: Sequence[str]) -> None:
        """Stop the load and remove the topics a run created."""

    @abstractmethod
    async def describe(self) -> dict[str, Any]:
        """Facts about the worker and the system under test."""

    @abstractmethod
    async def close(self) -> None: ...
