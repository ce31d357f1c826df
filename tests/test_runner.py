"""The runner's parts, in process, on the in-memory driver.

Real runs against a server are in test_cli_run.py; these pin the pieces
whose rules come from OMB: the worker split, the schedule, the phases.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from runner import histograms
from runner.benchmark import RunSettings, run_workload
from runner.ensemble import WorkerEnsemble, producer_worker_count
from runner.local_worker import LocalWorker, _Schedule
from runner.process_worker import ProcessWorker
from runner.protocol import (
    CountersStats,
    DriverSpec,
    PeriodStats,
    ProducerWorkAssignment,
    TopicSubscription,
)
from runner.workload import KeyDistributorType, Workload, load_workload

ROOT = Path(__file__).resolve().parent.parent
MEMORY = DriverSpec("Memory", "driver.memory.MemoryDriver", {}, "memory.yaml")
# How long a message may be on its way from the in-memory driver's producer to
# its consumer, with the coordinator's work in the same process holding both.
IN_FLIGHT_S = 0.05


@pytest.mark.parametrize(
    ("workers", "plain", "extra"),
    [
        (2, 1, 1),
        (3, 1, 1),
        (4, 2, 2),
        (5, 2, 2),
        (6, 3, 2),
        (7, 3, 3),
        (8, 4, 3),
        (9, 4, 3),
    ],
)
def test_producer_worker_split_follows_omb(
    workers: int, plain: int, extra: int
) -> None:
    assert producer_worker_count(workers) == plain
    assert producer_worker_count(workers, extra_consumers=True) == extra


def test_schedule_never_skips_slots() -> None:
    schedule = _Schedule(1000.0, now_ns=0)
    assert schedule.interval_ns == 1_000_000
    assert schedule.due(0) == 1
    # 10.5 ms later, slots 0..10 are due.
    assert schedule.due(10_500_000) == 11
    schedule.next_slot = 11
    assert schedule.due(10_500_000) == 0
    assert schedule.next_time_ns() == 11_000_000
    # A stall of one second: every missed slot is still due, none skipped.
    assert schedule.due(1_010_500_000) == 1000


def test_schedule_raises_a_rate_below_one_to_one() -> None:
    assert _Schedule(0.01, now_ns=0).interval_ns == 1_000_000_000


class Recording(LocalWorker):
    """A worker whose calls are logged, to check who is asked what."""

    def __init__(self, worker_id: str, log: list[tuple[str, str, object]]) -> None:
        super().__init__(worker_id)
        self.log = log

    async def create_topics(self, topics: int, partitions_per_topic: int) -> list[str]:
        self.log.append((self.id, "create_topics", topics))
        return await super().create_topics(topics, partitions_per_topic)

    async def create_producers(self, topics: Sequence[str]) -> None:
        self.log.append((self.id, "create_producers", list(topics)))
        await super().create_producers(topics)

    async def create_consumers(self, assignment: Sequence[TopicSubscription]) -> None:
        self.log.append((self.id, "create_consumers", len(assignment)))
        await super().create_consumers(assignment)

    async def start_load(self, assignment: ProducerWorkAssignment) -> None:
        self.log.append((self.id, "start_load", assignment.publish_rate_per_s))
        await super().start_load(assignment)


async def test_ensemble_deals_work_like_omb() -> None:
    log: list[tuple[str, str, object]] = []
    workers = [Recording(f"w{i}", log) for i in range(4)]
    ensemble = WorkerEnsemble(workers)
    await ensemble.initialize_driver(MEMORY)
    topics = await ensemble.create_topics(3, 1)
    await ensemble.create_producers(topics)
    await ensemble.create_consumers([TopicSubscription(t, "s") for t in topics])
    await ensemble.start_load(
        ProducerWorkAssignment([b"x"], 1000.0, KeyDistributorType.NO_KEY)
    )
    await ensemble.close()

    assert [entry for entry in log if entry[1] == "create_topics"] == [
        ("w0", "create_topics", 3)
    ]
    producers = {who: what for who, call, what in log if call == "create_producers"}
    assert producers == {"w0": [topics[0], topics[2]], "w1": [topics[1]]}
    consumers = {who: what for who, call, what in log if call == "create_consumers"}
    assert consumers == {"w2": 2, "w3": 1}
    rates = {who: what for who, call, what in log if call == "start_load"}
    assert rates == {"w0": 500.0, "w1": 500.0}


async def test_rate_is_split_over_workers_that_got_producers() -> None:
    log: list[tuple[str, str, object]] = []
    ensemble = WorkerEnsemble([Recording(f"w{i}", log) for i in range(4)])
    await ensemble.initialize_driver(MEMORY)
    topics = await ensemble.create_topics(1, 1)
    await ensemble.create_producers(topics)  # one topic: only w0 gets one
    await ensemble.start_load(
        ProducerWorkAssignment([b"x"], 1000.0, KeyDistributorType.NO_KEY)
    )
    await ensemble.close()
    rates = {who: what for who, call, what in log if call == "start_load"}
    assert rates == {"w0": 1000.0, "w1": 1000.0}


async def test_a_run_in_process_measures_what_was_sent() -> None:
    workload = dataclasses.replace(
        load_workload(ROOT / "workloads" / "smoke.yaml"),
        producer_rate_per_s=5000.0,
        test_duration_s=1.5,
        warmup_duration_s=0.5,
    )
    worker = LocalWorker()
    await worker.initialize_driver(MEMORY)
    started_s = time.monotonic()
    outcome = await run_workload(worker, workload, "Memory", RunSettings(period_s=0.5))
    wall_s = time.monotonic() - started_s
    await worker.stop_all()

    result = outcome.result
    assert len(result.publish_rate) == 3
    # The schedule never skips a slot: a sender held up (here by the
    # coordinator's histogram work in the same process) catches up later, so
    # single periods, even the measured phase as a whole, may run above the
    # rate. What must hold is the total: every slot from the start of the load
    # to its end is sent, and nothing beyond the schedule.
    sent = outcome.counters["messagesSent"] - 1  # one probe message
    assert 5000 * 2.0 * 0.9 <= sent <= 5000 * wall_s
    # A message sent just before a period's read may be received just after
    # it, so a single period's consume rate can trail or lead its publish
    # rate. Over the measured phase those shifts cancel out, but for the
    # messages in flight at its start and its end: the messages of a few
    # milliseconds, here IN_FLIGHT_S at most.
    in_flight_messages = 5000 * IN_FLIGHT_S
    unconsumed_messages = (sum(result.publish_rate) - sum(result.consume_rate)) * 0.5
    assert abs(unconsumed_messages) <= in_flight_messages
    assert outcome.counters["messagesSent"] == outcome.counters["messagesReceived"]
    assert outcome.counters["messageSendErrors"] == 0
    assert 0 < result.aggregated_publish_latency_50pct
    assert (
        result.aggregated_end_to_end_latency_50pct
        <= result.aggregated_end_to_end_latency_99pct
        <= result.aggregated_end_to_end_latency_max
    )
    assert outcome.negative_samples == {
        "publishLatency": 0,
        "publishDelayLatency": 0,
        "endToEndLatency": 0,
    }


async def test_reset_clears_latencies_but_not_counters() -> None:
    worker = LocalWorker()
    await worker.initialize_driver(MEMORY)
    topics = await worker.create_topics(1, 1)
    await worker.create_consumers([TopicSubscription(topics[0], "s")])
    await worker.create_producers(topics)
    await worker.probe_producers()
    worker.messages_received([b"abc"], [0])  # a far-past stamp: huge e2e
    await worker.reset_stats()
    counters = await worker.get_counters_stats()
    stats = await worker.get_period_stats()
    await worker.stop_all()

    assert counters.messages_sent == 1  # the probe
    assert counters.messages_received == 2
    e2e = histograms.merge_encoded(
        stats.end_to_end_latency, histograms.new_end_to_end_histogram
    )
    assert e2e.get_total_count() == 0


def _throttled(rate_per_s: float) -> DriverSpec:
    return DriverSpec(
        "Memory",
        "driver.memory.MemoryDriver",
        {"consumeRatePerS": rate_per_s},
        "memory.yaml",
    )


async def test_max_rate_settles_near_a_throttled_consumer() -> None:
    workload = dataclasses.replace(
        load_workload(ROOT / "workloads" / "smoke.yaml"),
        producer_rate_per_s=0.0,
        warmup_duration_s=0.0,
        test_duration_s=36.0,
    )
    worker = LocalWorker()
    await worker.initialize_driver(_throttled(3000))
    outcome = await run_workload(worker, workload, "Memory", RunSettings(period_s=6.0))
    await worker.stop_all()

    rates = [rate for _, rate in outcome.chosen_rates]
    assert len(rates) >= 10
    assert min(rates) > 1.0  # never down at the floor
    # Once the first burst (10,000 msg/s for 3 s) is worked off, the chosen
    # rate stays near the throttle, ...
    settled = [rate for at_s, rate in outcome.chosen_rates if at_s > 20]
    mean = sum(settled) / len(settled)
    assert mean == pytest.approx(3000, rel=0.2)
    # ... and so does what was consumed in the last periods.
    for consumed in outcome.result.consume_rate[-3:]:
        assert consumed == pytest.approx(3000, rel=0.2)


def _backlog_workload() -> Workload:
    """2,000 msg/s of 1 KiB with a 2 MiB backlog to build (2,048 messages)."""
    return dataclasses.replace(
        load_workload(ROOT / "workloads" / "smoke.yaml"),
        producer_rate_per_s=2000.0,
        consumer_backlog_size_gb=2 / 1024,
        warmup_duration_s=0.0,
        test_duration_s=1.0,
    )


async def test_backlog_builds_drains_and_finishes() -> None:
    # 2 MiB of 1 KiB messages = 2,048 messages; drained to 1,000 or fewer.
    workload = _backlog_workload()
    worker = LocalWorker()
    await worker.initialize_driver(MEMORY)
    outcome = await run_workload(worker, workload, "Memory", RunSettings(period_s=1.0))
    await worker.stop_all()
    assert outcome.backlog["drainComplete"] is True
    assert 0.5 < float(outcome.backlog["buildSeconds"]) < 5  # type: ignore[arg-type]
    # Sampled at period ends, so near (not at) the 2,048 built.
    assert max(outcome.result.backlog) >= 1500
    assert outcome.counters["messagesSent"] == outcome.counters["messagesReceived"]


async def test_a_drain_that_cannot_finish_ends_the_run() -> None:
    # Consumers manage 500 msg/s while 2,000 msg/s keep coming: the backlog
    # can only grow after they resume.
    workload = _backlog_workload()
    worker = LocalWorker()
    await worker.initialize_driver(_throttled(500))
    settings = RunSettings(period_s=1.0, drain_timeout_s=2.0)
    outcome = await asyncio.wait_for(
        run_workload(worker, workload, "Memory", settings), 30
    )
    await worker.stop_all()
    assert outcome.backlog["drainComplete"] is False
    left = outcome.backlog["drainLeftMessages"]
    assert isinstance(left, int) and left > 1000


async def test_a_worker_process_answers_after_a_cancelled_call() -> None:
    worker = ProcessWorker("w-cancel")
    try:
        await worker.initialize_driver(MEMORY)
        await worker.create_topics(1, 1)
        # Cancelled after the request went out: its reply still arrives, and
        # must not be taken for the answer to the next call.
        interrupted = asyncio.create_task(worker.get_counters_stats())
        await asyncio.sleep(0)
        interrupted.cancel()
        with pytest.raises(asyncio.CancelledError):
            await interrupted
        period = await worker.get_period_stats()
        counters = await worker.get_counters_stats()
    finally:
        await worker.close()
    assert isinstance(period, PeriodStats)
    assert isinstance(counters, CountersStats)
