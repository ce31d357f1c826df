"""The worker that does the work: drives producers and counts what arrives.

One sender task paces every producer of this worker from one shared
schedule, as OMB's uniform rate limiter does: message k is intended to leave
at `start + k * interval`. Each time the task wakes it sends every message
whose intended time has passed, as one batch per producer, so at 50,000 msg/s
there are a few dozen messages per wake-up instead of one timer per message.
Slots are never skipped: a sender that fell behind catches up back to back,
and the lag shows as publish delay.

Latencies are kept as raw integers and folded into histograms only when
stats are read; per message the hot path does a few list appends.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
import os
import random
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from aioredismq.errors import DriverConfigError
from aioredismq.tasks import cancel_and_wait
from driver.base import (
    BenchmarkConsumer,
    BenchmarkDriver,
    BenchmarkProducer,
    ConsumerCallback,
    ConsumerInfo,
    ProducerInfo,
    TopicInfo,
)
from runner import histograms
from runner.payloads import key_distributor
from runner.protocol import (
    CountersStats,
    CumulativeLatencies,
    DriverSpec,
    PeriodStats,
    ProducerWorkAssignment,
    TopicSubscription,
    Worker,
    random_suffix,
)
from runner.workload import KeyDistributorType

__all__ = ["LocalWorker", "load_driver_class"]

logger = logging.getLogger(__name__)

# Most messages one producer gets in one batch; a sender that fell far behind
# yields to the event loop between batches so acks keep flowing.
MAX_BATCH_MESSAGES = 2_000
# ... and at most this many bytes of payload (64 KiB messages at a rate of
# 10,000,000 msg/s would otherwise make 128 MiB batches).
MAX_BATCH_BYTES = 4 << 20
# Unacknowledged messages (and payload bytes) per worker before the sender
# waits for acks, so a server that cannot keep up slows the sender instead of
# filling memory.
MAX_OUTSTANDING_MESSAGES = 100_000
MAX_OUTSTANDING_BYTES = 256 << 20
# Raw latency samples are folded into histograms this often, so that no one
# fold (about 0.1 µs a sample) holds up the sender for long.
FOLD_INTERVAL_S = 0.25
# The shortest sleep the sender takes: event-loop timers have millisecond
# resolution, and a shorter wait would spin instead of sleeping. Messages due
# meanwhile go out together, a millisecond late at most (publish delay).
MIN_SLEEP_S = 0.001
# How long stopping waits for the acks of messages already sent.
ACK_WAIT_S = 30.0
PROBE_PAYLOAD = bytes(10)
PROBE_KEY = "key"


def load_driver_class(spec: DriverSpec) -> type[BenchmarkDriver]:
    """Import `driverClass` (`package.module.Class`) and check what it is."""
    module_name, _, class_name = spec.driver_class.rpartition(".")
    allowed = "expected an importable BenchmarkDriver class, package.module.Class"
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as err:
        raise DriverConfigError(
            spec.source, "driverClass", spec.driver_class, allowed
        ) from err
    if not (isinstance(cls, type) and issubclass(cls, BenchmarkDriver)):
        raise DriverConfigError(spec.source, "driverClass", spec.driver_class, allowed)
    return cls


class _Schedule:
    """Intended send times `start_ns + k * interval_ns` (OMB's limiter)."""

    __slots__ = ("start_ns", "interval_ns", "next_slot")

    def __init__(self, rate_per_s: float, now_ns: int) -> None:
        # OMB raises a rate below 1 msg/s to 1.
        rate_per_s = max(rate_per_s, 1.0)
        self.interval_ns = max(1, round(1e9 / rate_per_s))
        self.start_ns = now_ns
        self.next_slot = 0

    def due(self, now_ns: int) -> int:
        """How many slots' intended times are at or before `now_ns`."""
        return (now_ns - self.start_ns) // self.interval_ns + 1 - self.next_slot

    def next_time_ns(self) -> int:
        return self.start_ns + self.next_slot * self.interval_ns


class _LatencyChannel:
    """One latency family: raw samples, period and cumulative histograms.

    OMB keeps two recorders per family, one read every period and one read
    at the end; both see every sample. Here both are fed from one buffer of
    raw samples in one pass, often enough (`fold`) that no single fold is
    long enough to hold up the sender. The histograms are made once and
    emptied in place: making an end-to-end one costs about 10 ms.
    """

    def __init__(self, factory: histograms.HistogramFactory) -> None:
        self._buffer = histograms.SampleBuffer(factory)
        self._period = factory()
        self._cumulative = factory()
        self.add = self._buffer.add
        self.extend = self._buffer.extend

    def fold(self) -> None:
        self._buffer.fold_into(self._period, self._cumulative)

    def take_period(self) -> str:
        self.fold()
        encoded = histograms.encode(self._period)
        histograms.reset_histogram(self._period)
        return encoded

    def take_cumulative(self) -> str:
        self.fold()
        encoded = histograms.encode(self._cumulative)
        histograms.reset_histogram(self._cumulative)
        return encoded

    def reset(self) -> None:
        self._buffer.clear()
        self._buffer.reset_counters()
        histograms.reset_histogram(self._period)
        histograms.reset_histogram(self._cumulative)

    @property
    def overflow_count(self) -> int:
        return self._buffer.overflow_count

    @property
    def negative_count(self) -> int:
        return self._buffer.negative_count


class LocalWorker(Worker, ConsumerCallback):
    """Holds a driver, its producers and consumers, and their statistics."""

    def __init__(self, worker_id: str = "local") -> None:
        self._id = worker_id
        self._driver: BenchmarkDriver | None = None
        self._producers: list[BenchmarkProducer] = []
        self._consumers: list[BenchmarkConsumer] = []
        self._sender: asyncio.Task[None] | None = None
        self._schedule: _Schedule | None = None
        self._outstanding = 0
        self._outstanding_bytes = 0
        self._acks_waiter: asyncio.Future[None] | None = None
        self._housekeeper: asyncio.Task[None] | None = None
        self._publish = _LatencyChannel(histograms.new_publish_histogram)
        self._delay = _LatencyChannel(histograms.new_publish_delay_histogram)
        self._e2e = _LatencyChannel(histograms.new_end_to_end_histogram)
        # Publish delays are kept per batch as (send_ns, first intended ns,
        # ns between intended times, count) and expanded when folded.
        self._delay_batches: list[tuple[int, int, int, int]] = []
        self._reset_counters()

    # stats state

    def _reset_counters(self) -> None:
        self._sent = 0
        self._send_errors = 0
        self._bytes_sent = 0
        self._received = 0
        self._bytes_received = 0
        self._total_sent = 0
        self._total_send_errors = 0
        self._total_received = 0

    def _reset_latencies(self) -> None:
        for channel in self._channels():
            channel.reset()
        self._delay_batches.clear()

    def _channels(self) -> tuple[_LatencyChannel, ...]:
        return (self._publish, self._delay, self._e2e)

    @property
    def id(self) -> str:
        return self._id

    # setup

    async def initialize_driver(self, spec: DriverSpec) -> None:
        if self._driver is not None:
            raise RuntimeError("a driver is loaded already; call stop_all first")
        driver = load_driver_class(spec)()
        await driver.initialize(spec.config, spec.source)
        self._driver = driver
        self._housekeeper = asyncio.create_task(
            self._fold_periodically(), name=f"folder {self._id}"
        )

    async def _fold_periodically(self) -> None:
        while True:
            await asyncio.sleep(FOLD_INTERVAL_S)
            self._fold_all()

    def _fold_all(self) -> None:
        self._fold_delays()
        for channel in self._channels():
            channel.fold()

    def _need_driver(self) -> BenchmarkDriver:
        if self._driver is None:
            raise RuntimeError("no driver loaded; call initialize_driver first")
        return self._driver

    async def create_topics(self, topics: int, partitions_per_topic: int) -> list[str]:
        driver = self._need_driver()
        prefix = driver.topic_name_prefix
        names = [f"{prefix}-{i:07d}-{random_suffix()}" for i in range(topics)]
        await driver.create_topics([TopicInfo(n, partitions_per_topic) for n in names])
        return names

    async def create_producers(self, topics: Sequence[str]) -> None:
        infos = [ProducerInfo(i, topic) for i, topic in enumerate(topics)]
        self._producers += await self._need_driver().create_producers(infos)

    async def create_consumers(self, assignment: Sequence[TopicSubscription]) -> None:
        infos = [
            ConsumerInfo(i, item.topic, item.subscription, self)
            for i, item in enumerate(assignment)
        ]
        self._consumers += await self._need_driver().create_consumers(infos)

    async def probe_producers(self) -> None:
        async def probe(producer: BenchmarkProducer) -> None:
            await producer.send_async(PROBE_KEY, PROBE_PAYLOAD)
            self._total_sent += 1

        await asyncio.gather(*(probe(p) for p in self._producers))

    # load

    async def start_load(self, assignment: ProducerWorkAssignment) -> None:
        if not self._producers:
            return
        if not assignment.payloads:
            raise ValueError("start_load needs at least one payload")
        self._schedule = _Schedule(
            assignment.publish_rate_per_s, time.perf_counter_ns()
        )
        self._sender = asyncio.create_task(
            self._send_loop(list(assignment.payloads), assignment.key_distributor),
            name=f"sender {self._id}",
        )

    async def adjust_publish_rate(self, publish_rate_per_s: float) -> None:
        # A new schedule, as OMB swaps in a new limiter on every change.
        self._schedule = _Schedule(publish_rate_per_s, time.perf_counter_ns())

    async def _send_loop(
        self, payloads: list[bytes], key_kind: KeyDistributorType
    ) -> None:
        keys = key_distributor(key_kind)
        producers = self._producers
        count = len(producers)
        single = payloads[0] if len(payloads) == 1 else None
        largest = max(map(len, payloads)) or 1
        batch_limit = max(1, min(MAX_BATCH_MESSAGES, MAX_BATCH_BYTES // largest))
        while True:
            schedule = self._schedule
            assert schedule is not None
            now_ns = time.perf_counter_ns()
            due = schedule.due(now_ns)
            if due <= 0:
                wait_s = (schedule.next_time_ns() - now_ns) / 1e9
                await asyncio.sleep(max(wait_s, MIN_SLEEP_S))
                continue
            if (
                self._outstanding >= MAX_OUTSTANDING_MESSAGES
                or self._outstanding_bytes >= MAX_OUTSTANDING_BYTES
            ):
                self._acks_waiter = asyncio.get_running_loop().create_future()
                await self._acks_waiter
                continue
            due = min(due, batch_limit * count)
            first_slot = schedule.next_slot
            schedule.next_slot += due
            interval_ns = schedule.interval_ns
            # Slot k goes to producer k % count, so each producer's intended
            # times step by count * interval.
            for offset in range(min(count, due)):
                slot = first_slot + offset
                producer = producers[slot % count]
                n = (due - offset + count - 1) // count
                if single is not None:
                    batch = [single] * n
                    size = len(single) * n
                else:
                    batch = random.choices(payloads, k=n)
                    size = sum(map(len, batch))
                send_ns = time.perf_counter_ns()
                future = producer.send_batch(keys.next_keys(n), batch)
                self._outstanding += n
                self._outstanding_bytes += size
                future.add_done_callback(
                    functools.partial(
                        self._on_acked,
                        send_ns,
                        schedule.start_ns + slot * interval_ns,
                        interval_ns * count,
                        n,
                        size,
                    )
                )
            await asyncio.sleep(0)

    def _on_acked(
        self,
        send_ns: int,
        first_intended_ns: int,
        step_ns: int,
        count: int,
        size_bytes: int,
        future: asyncio.Future[int],
    ) -> None:
        ack_ns = time.perf_counter_ns()
        self._outstanding -= count
        self._outstanding_bytes -= size_bytes
        waiter = self._acks_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        failed = count if future.cancelled() or future.exception() else future.result()
        ok = count - failed
        if failed:
            self._send_errors += failed
            self._total_send_errors += failed
        if ok:
            self._sent += ok
            self._total_sent += ok
            self._bytes_sent += size_bytes * ok // count
            self._publish.add((ack_ns - send_ns) // 1000, ok)
            self._delay_batches.append((send_ns, first_intended_ns, step_ns, ok))

    # consumer callback

    def message_received(self, payload: bytes, publish_timestamp_us: int) -> None:
        self.messages_received([payload], [publish_timestamp_us])

    def messages_received(
        self, payloads: Sequence[bytes], publish_timestamps_us: Sequence[int]
    ) -> None:
        now_us = time.time_ns() // 1000
        count = len(payloads)
        self._received += count
        self._total_received += count
        self._bytes_received += sum(map(len, payloads))
        self._e2e.extend([now_us - stamp for stamp in publish_timestamps_us])

    async def pause_consumers(self) -> None:
        for consumer in self._consumers:
            consumer.pause()

    async def resume_consumers(self) -> None:
        for consumer in self._consumers:
            consumer.resume()

    # stats

    def _fold_delays(self) -> None:
        batches, self._delay_batches = self._delay_batches, []
        if not batches:
            return
        table = np.array(batches, dtype=np.int64)
        counts = table[:, 3]
        # Expand every batch into its messages' intended times in one go.
        starts = np.repeat(np.cumsum(counts) - counts, counts)
        index = np.arange(int(counts.sum()), dtype=np.int64) - starts
        send_ns = np.repeat(table[:, 0], counts)
        intended_ns = np.repeat(table[:, 1], counts) + index * np.repeat(
            table[:, 2], counts
        )
        self._delay.extend((send_ns - intended_ns) // 1000)

    async def get_counters_stats(self) -> CountersStats:
        return CountersStats(
            self._total_sent,
            self._total_received,
            self._total_send_errors,
        )

    async def get_period_stats(self) -> PeriodStats:
        self._fold_delays()
        stats = PeriodStats(
            messages_sent=self._sent,
            message_send_errors=self._send_errors,
            bytes_sent=self._bytes_sent,
            messages_received=self._received,
            bytes_received=self._bytes_received,
            total_messages_sent=self._total_sent,
            total_message_send_errors=self._total_send_errors,
            total_messages_received=self._total_received,
            publish_latency=[self._publish.take_period()],
            publish_delay_latency=[self._delay.take_period()],
            end_to_end_latency=[self._e2e.take_period()],
        )
        self._sent = self._send_errors = self._bytes_sent = 0
        self._received = self._bytes_received = 0
        return stats

    async def get_cumulative_latencies(self) -> CumulativeLatencies:
        self._fold_delays()
        channels = {
            "publishLatency": self._publish,
            "publishDelayLatency": self._delay,
            "endToEndLatency": self._e2e,
        }
        return CumulativeLatencies(
            publish_latency=[self._publish.take_cumulative()],
            publish_delay_latency=[self._delay.take_cumulative()],
            end_to_end_latency=[self._e2e.take_cumulative()],
            overflow_samples={k: c.overflow_count for k, c in channels.items()},
            negative_samples={k: c.negative_count for k, c in channels.items()},
        )

    async def reset_stats(self) -> None:
        self._reset_latencies()

    async def stop_producers(self) -> None:
        """Stop sending; close producers once what they sent is acknowledged."""
        await cancel_and_wait(self._sender)
        self._sender = None
        self._schedule = None
        producers, self._producers = self._producers, []
        # Together: a consumer takes up to a blocking read to stop, and a
        # workload may have thousands.
        await asyncio.gather(*(producer.close() for producer in producers))
        # Acks are counted in callbacks a loop iteration or two after the
        # drivers' futures complete; wait for them so the counts are final.
        deadline = time.monotonic() + ACK_WAIT_S
        while self._outstanding > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.001)

    async def stop_load(self) -> None:
        """Stop the load and close producers and consumers; keep the driver."""
        await self.stop_producers()
        consumers, self._consumers = self._consumers, []
        await asyncio.gather(*(consumer.close() for consumer in consumers))

    async def stop_all(self) -> None:
        await self.stop_load()
        await cancel_and_wait(self._housekeeper)
        self._housekeeper = None
        if self._driver is not None:
            driver, self._driver = self._driver, None
            await driver.close()
        self._outstanding = 0
        self._outstanding_bytes = 0
        self._reset_counters()
        self._reset_latencies()

    async def delete_topics(self, topics: Sequence[str]) -> None:
        # Consumers still reading would recreate what is being deleted.
        await self.stop_load()
        await self._need_driver().delete_topics(topics)

    async def describe(self) -> dict[str, Any]:
        system = await self._driver.describe() if self._driver is not None else {}
        return {"workers": [{"worker": self._id, "pid": os.getpid()}], "system": system}

    async def close(self) -> None:
        await self.stop_all()
