"""Several workers seen as one, split the way OMB's worker ensemble splits them.

The first half of the workers (rounded down) hold producers, the rest hold
consumers; with `extra_consumers` only about a third hold producers. The
first worker is the leader and alone creates topics. The publish rate is
divided by the number of producer workers that actually got producers.
Stats are read from every worker and added up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import reduce
from operator import add
from typing import Any

from runner.protocol import (
    CountersStats,
    CumulativeLatencies,
    DriverSpec,
    PeriodStats,
    ProducerWorkAssignment,
    TopicSubscription,
    Worker,
)

__all__ = ["WorkerEnsemble", "producer_worker_count"]


def producer_worker_count(workers: int, extra_consumers: bool = False) -> int:
    """How many of `workers` hold producers (OMB's rule)."""
    return (workers + 2) // 3 if extra_consumers else workers // 2


def _deal(items: Sequence[Any], hands: int) -> list[list[Any]]:
    """Item i goes to hand i mod `hands`."""
    dealt: list[list[Any]] = [[] for _ in range(hands)]
    for i, item in enumerate(items):
        dealt[i % hands].append(item)
    return dealt


class WorkerEnsemble(Worker):
    def __init__(self, workers: Sequence[Worker], extra_consumers: bool = False):
        if len(workers) < 2:
            raise ValueError("an ensemble needs at least two workers")
        self.workers = list(workers)
        split = producer_worker_count(len(workers), extra_consumers)
        self.producer_workers = self.workers[:split]
        self.consumer_workers = self.workers[split:]
        self._loaded_producer_workers = len(self.producer_workers)

    @property
    def id(self) -> str:
        return "ensemble(" + ",".join(w.id for w in self.workers) + ")"

    @staticmethod
    async def _each(workers: Sequence[Worker], method: str, *args: Any) -> list[Any]:
        return list(await asyncio.gather(*(getattr(w, method)(*args) for w in workers)))

    async def initialize_driver(self, spec: DriverSpec) -> None:
        await self._each(self.workers, "initialize_driver", spec)

    async def create_topics(self, topics: int, partitions_per_topic: int) -> list[str]:
        return await self.workers[0].create_topics(topics, partitions_per_topic)

    async def create_producers(self, topics: Sequence[str]) -> None:
        hands = _deal(topics, len(self.producer_workers))
        self._loaded_producer_workers = sum(1 for hand in hands if hand)
        await asyncio.gather(
            *(
                worker.create_producers(hand)
                for worker, hand in zip(self.producer_workers, hands, strict=True)
                if hand
            )
        )

    async def create_consumers(self, assignment: Sequence[TopicSubscription]) -> None:
        hands = _deal(assignment, len(self.consumer_workers))
        await asyncio.gather(
            *(
                worker.create_consumers(hand)
                for worker, hand in zip(self.consumer_workers, hands, strict=True)
                if hand
            )
        )

    async def probe_producers(self) -> None:
        await self._each(self.producer_workers, "probe_producers")

    def _per_worker_rate(self, rate_per_s: float) -> float:
        return rate_per_s / max(1, self._loaded_producer_workers)

    async def start_load(self, assignment: ProducerWorkAssignment) -> None:
        share = ProducerWorkAssignment(
            assignment.payloads,
            self._per_worker_rate(assignment.publish_rate_per_s),
            assignment.key_distributor,
        )
        await self._each(self.producer_workers, "start_load", share)

    async def adjust_publish_rate(self, publish_rate_per_s: float) -> None:
        rate = self._per_worker_rate(publish_rate_per_s)
        await self._each(self.producer_workers, "adjust_publish_rate", rate)

    async def pause_consumers(self) -> None:
        await self._each(self.consumer_workers, "pause_consumers")

    async def resume_consumers(self) -> None:
        await self._each(self.consumer_workers, "resume_consumers")

    async def get_counters_stats(self) -> CountersStats:
        stats: CountersStats = reduce(
            add, await self._each(self.workers, "get_counters_stats")
        )
        return stats

    async def get_period_stats(self) -> PeriodStats:
        stats: PeriodStats = reduce(
            add, await self._each(self.workers, "get_period_stats")
        )
        return stats

    async def get_cumulative_latencies(self) -> CumulativeLatencies:
        stats: CumulativeLatencies = reduce(
            add, await self._each(self.workers, "get_cumulative_latencies")
        )
        return stats

    async def reset_stats(self) -> None:
        await self._each(self.workers, "reset_stats")

    async def stop_producers(self) -> None:
        await self._each(self.producer_workers, "stop_producers")

    async def stop_load(self) -> None:
        await self._each(self.workers, "stop_load")

    async def stop_all(self) -> None:
        await self._each(self.workers, "stop_all")

    async def delete_topics(self, topics: Sequence[str]) -> None:
        # Every worker's consumers must stop first, or they recreate the
        # streams the leader deletes.
        await self.stop_load()
        await self.workers[0].delete_topics(topics)

    async def describe(self) -> dict[str, Any]:
        facts = await self._each(self.workers, "describe")
        workers = [entry for fact in facts for entry in fact["workers"]]
        return {"workers": workers, "system": facts[0]["system"]}

    async def close(self) -> None:
        results = await asyncio.gather(
            *(w.close() for w in self.workers), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
