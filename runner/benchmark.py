"""One benchmark run: OMB's phases, driven from the coordinator.

Create topics, consumers and producers; probe until every subscription has
seen a message; start the load; warm up; clear the latency recorders;
measure, printing OMB's stats line each period; read the cumulative
latencies; stop. The result carries OMB's keys only; what we add goes to a
sidecar next to it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from aioredismq.errors import WorkerError
from runner import histograms
from runner.control import (
    BUILDING_BACKLOG,
    DRAINING_BACKLOG,
    MEASURING,
    BacklogPhase,
    RateController,
)
from runner.payloads import load_payloads
from runner.protocol import (
    CountersStats,
    CumulativeLatencies,
    PeriodStats,
    ProducerWorkAssignment,
    TopicSubscription,
    Worker,
    random_suffix,
)
from runner.result import TestResult, add_aggregates, add_period
from runner.workload import Workload

__all__ = [
    "MEASURING",
    "WARMING_UP",
    "PeriodSummary",
    "RunOutcome",
    "RunSettings",
    "planned_durations",
    "run_workload",
]

logger = logging.getLogger(__name__)

MIB = 1 << 20
READY_TIMEOUT_S = 60.0
READY_POLL_S = 0.1
# How long the consumers get to catch up once the producers have stopped.
DRAIN_TIMEOUT_S = 30.0
# The two phases whose length the workload sets (the others last as long as
# the work they do takes).
WARMING_UP = "warming up"


@dataclass(frozen=True, slots=True)
class RunSettings:
    """How a run is carried out, beyond what the workload file says."""

    period_s: float = 10.0
    keep_topics: bool = False
    #: How long a backlog drain may take before the run gives up on it.
    drain_timeout_s: float = 600.0


@dataclass(slots=True)
class RunOutcome:
    """The OMB result plus what goes into the sidecar."""

    result: TestResult
    topics: list[str]
    counters: dict[str, int] = field(default_factory=dict)
    overflow_samples: dict[str, int] = field(default_factory=dict)
    negative_samples: dict[str, int] = field(default_factory=dict)
    system: dict[str, Any] = field(default_factory=dict)
    #: Max-rate discovery: (seconds since the load started, rate chosen) per
    #: adjustment.
    chosen_rates: list[tuple[float, float]] = field(default_factory=list)
    #: Seconds from the start of the load to the start of the measured phase
    #: (warm-up plus its closing reads, plus any backlog build and drain).
    measured_from_s: float | None = None
    #: Backlog mode: build and drain times, whether the drain completed.
    backlog: dict[str, object] = field(default_factory=dict)
    started_at: float = 0.0
    finished_at: float = 0.0


@dataclass(frozen=True, slots=True)
class PeriodSummary:
    """The figures of one stats period that a progress display shows."""

    publish_rate_per_s: float
    consume_rate_per_s: float
    publish_error_rate_per_s: float
    backlog_messages: int
    publish_latency_p99_us: float


def planned_durations(workload: Workload) -> dict[str, float | None]:
    """How long each timed phase of a run of `workload` is meant to last.

    None where the end is not known in advance: a workload without a test
    duration runs until stopped, and a backlog takes as long as it takes to
    build and drain (the measured phase spans both, then the test duration).
    A warm-up of 0 is skipped, so it is left out.
    """
    planned: dict[str, float | None] = {}
    if workload.warmup_duration_s > 0:
        planned[WARMING_UP] = workload.warmup_duration_s
    if workload.consumer_backlog_size_gb > 0:
        # Measuring starts with the build; the test duration follows the drain.
        planned[BUILDING_BACKLOG] = None
        planned[DRAINING_BACKLOG] = None
    planned[MEASURING] = workload.test_duration_s
    return planned


def _new_result(workload: Workload, driver_name: str) -> TestResult:
    return TestResult(
        workload=workload.name or "",
        driver=driver_name,
        message_size_bytes=workload.message_size_bytes,
        topics=workload.topics,
        partitions=workload.partitions_per_topic,
        producers_per_topic=workload.producers_per_topic,
        # OMB fills this from consumerPerSubscription.
        consumers_per_topic=workload.consumer_per_subscription,
    )


def _merge(encoded: list[str], factory: Callable[[], HdrHistogram]) -> HdrHistogram:
    return histograms.merge_encoded(encoded, factory)


async def run_workload(
    worker: Worker,
    workload: Workload,
    driver_name: str,
    settings: RunSettings = RunSettings(),
    *,
    on_phase: Callable[[str], None] | None = None,
    on_period: Callable[[PeriodSummary], None] | None = None,
) -> RunOutcome:
    """Run one workload on an initialized worker (or ensemble).

    `on_phase` is called with each phase's name as it begins, `on_period`
    with each stats period's figures (warm-up and measured phase alike).
    """
    started_at = time.time()

    def phase(name: str) -> None:
        logger.info("%s", name)
        if on_phase is not None:
            on_phase(name)

    phase("creating topics")
    topics = await worker.create_topics(workload.topics, workload.partitions_per_topic)
    outcome = RunOutcome(
        result=_new_result(workload, driver_name), topics=topics, started_at=started_at
    )
    try:
        await _run_phases(worker, workload, settings, outcome, phase, on_period)
    finally:
        if settings.keep_topics:
            logger.info("keeping %d topics: %s", len(topics), ", ".join(topics))
        else:
            try:
                await worker.delete_topics(topics)
            except Exception as err:  # noqa: BLE001 - cleanup must not mask
                logger.warning("could not delete the run's topics: %s", err)
    outcome.finished_at = time.time()
    return outcome


async def _run_phases(
    worker: Worker,
    workload: Workload,
    settings: RunSettings,
    outcome: RunOutcome,
    phase: Callable[[str], None],
    on_period: Callable[[PeriodSummary], None] | None,
) -> None:
    topics = outcome.topics
    phase("creating consumers")
    assignment: list[TopicSubscription] = []
    for topic in topics:
        for i in range(workload.subscriptions_per_topic):
            subscription = TopicSubscription(topic, f"sub-{i:03d}-{random_suffix()}")
            assignment += [subscription] * workload.consumer_per_subscription
    random.shuffle(assignment)
    await worker.create_consumers(assignment)

    phase("creating producers")
    producer_topics = [t for t in topics for _ in range(workload.producers_per_topic)]
    random.shuffle(producer_topics)
    await worker.create_producers(producer_topics)

    phase("waiting for consumers to be ready")
    await _ensure_ready(worker, workload.topics * workload.subscriptions_per_topic)

    payloads = load_payloads(workload)
    controller: RateController | None = None
    rate_per_s = workload.producer_rate_per_s
    if rate_per_s == 0:
        controller = RateController(worker, workload.subscriptions_per_topic)
        rate_per_s = controller.start_rate_per_s
    await worker.start_load(
        ProducerWorkAssignment(payloads, rate_per_s, workload.key_distributor)
    )
    load_started_s = time.monotonic()
    backlog: BacklogPhase | None = None
    try:
        if controller is not None:
            controller.start(load_started_s)
        if workload.warmup_duration_s > 0:
            phase(WARMING_UP)
            warmup = _new_result(workload, outcome.result.driver)
            await _stats_loop(
                worker,
                workload,
                warmup,
                workload.warmup_duration_s,
                settings.period_s,
                on_period=on_period,
            )
            await _read_cumulative(worker, warmup)
        if workload.consumer_backlog_size_gb > 0:
            backlog = BacklogPhase(
                worker,
                workload.subscriptions_per_topic,
                workload.message_size_bytes,
                workload.consumer_backlog_size_gb,
                workload.backlog_drain_ratio,
                workload.test_duration_s,
                settings.drain_timeout_s,
                phase,
            )
            backlog.start()

        await worker.reset_stats()
        outcome.measured_from_s = round(time.monotonic() - load_started_s, 3)
        if backlog is None:
            phase(MEASURING)  # else the backlog phase names its steps
        await _stats_loop(
            worker,
            workload,
            outcome.result,
            workload.test_duration_s,
            settings.period_s,
            None if backlog is None else backlog.done,
            on_period,
        )
    finally:
        if controller is not None:
            await controller.stop()
            outcome.chosen_rates = controller.chosen
        if backlog is not None:
            await backlog.stop()
            outcome.backlog = backlog.status
    cumulative = await _read_cumulative(worker, outcome.result)
    outcome.overflow_samples = cumulative.overflow_samples
    outcome.negative_samples = cumulative.negative_samples
    phase("draining")
    await worker.stop_producers()
    # After a drain that already gave up, waiting again would only repeat it.
    gave_up = outcome.backlog.get("drainComplete") is False
    counters = await _drain(
        worker, workload.subscriptions_per_topic, 0.0 if gave_up else DRAIN_TIMEOUT_S
    )
    outcome.counters = {
        "messagesSent": counters.messages_sent,
        "messagesReceived": counters.messages_received,
        "messageSendErrors": counters.message_send_errors,
    }
    outcome.system = await worker.describe()


async def _ensure_ready(worker: Worker, expected: int) -> None:
    """Probe producers until every subscription has received a message."""
    await worker.probe_producers()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        counters = await worker.get_counters_stats()
        if counters.messages_received >= expected:
            logger.info(
                "all consumers ready (%d probe messages received)",
                counters.messages_received,
            )
            return
        if time.monotonic() >= deadline:
            raise WorkerError(
                f"timed out waiting for consumers to be ready: received "
                f"{counters.messages_received} of {expected} probe messages "
                f"in {READY_TIMEOUT_S:.0f} s"
            )
        await asyncio.sleep(READY_POLL_S)


async def _drain(worker: Worker, subscriptions: int, timeout_s: float) -> CountersStats:
    """Wait until every subscription has received every message sent.

    The final counts then say whether anything was lost: with all sends
    acknowledged and the consumers caught up, received = subscriptions x sent.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        counters = await worker.get_counters_stats()
        expected = subscriptions * counters.messages_sent
        if counters.messages_received >= expected:
            return counters
        if time.monotonic() >= deadline:
            logger.warning(
                "consumers did not catch up within %.0f s: received %d of %d",
                timeout_s,
                counters.messages_received,
                expected,
            )
            return counters
        await asyncio.sleep(READY_POLL_S)


async def _stats_loop(
    worker: Worker,
    workload: Workload,
    result: TestResult,
    duration_s: float | None,
    period_s: float,
    backlog_done: asyncio.Event | None = None,
    on_period: Callable[[PeriodSummary], None] | None = None,
) -> None:
    """Poll period stats until the duration is over (None: forever) and any
    backlog phase has finished."""
    # Period counters run on between loops (the warm-up's last read, the
    # cumulative read and the reset take a moment); start from a clean read.
    await worker.get_period_stats()
    start = last = time.monotonic()
    end = float("inf") if duration_s is None else start + duration_s
    while True:
        # Sleep to the period boundary, but no further than the end, so a
        # duration shorter than a period still gives one sample (once the
        # end has passed, while a backlog drains, whole periods again).
        boundary = last + period_s
        if end > time.monotonic():
            boundary = min(boundary, end)
        wait_s = max(0.0, boundary - time.monotonic())
        if backlog_done is not None and time.monotonic() >= end:
            # Past the end only the backlog phase holds the run: take the
            # last sample as soon as it is over, not a whole period later.
            try:
                await asyncio.wait_for(backlog_done.wait(), wait_s)
            except TimeoutError:
                pass
        else:
            await asyncio.sleep(wait_s)
        stats = await worker.get_period_stats()
        now = time.monotonic()
        elapsed_s = now - last
        last = now
        summary = _record_period(result, workload, stats, elapsed_s)
        if on_period is not None:
            on_period(summary)
        if now >= end and (backlog_done is None or backlog_done.is_set()):
            return


def _record_period(
    result: TestResult, workload: Workload, stats: PeriodStats, elapsed_s: float
) -> PeriodSummary:
    publish = _merge(stats.publish_latency, histograms.new_publish_histogram)
    delay = _merge(stats.publish_delay_latency, histograms.new_publish_histogram)
    e2e = _merge(stats.end_to_end_latency, histograms.new_end_to_end_histogram)
    publish_rate = stats.messages_sent / elapsed_s
    consume_rate = stats.messages_received / elapsed_s
    error_rate = stats.message_send_errors / elapsed_s
    backlog = max(
        0,
        workload.subscriptions_per_topic * stats.total_messages_sent
        - stats.total_messages_received,
    )
    add_period(
        result, publish_rate, error_rate, consume_rate, backlog, publish, delay, e2e
    )
    logger.info(
        "Pub rate %7.1f msg/s / %4.1f MB/s | Pub err %7.1f err/s | "
        "Cons rate %7.1f msg/s / %4.1f MB/s | Backlog: %4.1f K | "
        "Pub Latency (ms) avg: %4.1f - 50%%: %4.1f - 99%%: %4.1f - "
        "99.9%%: %4.1f - Max: %4.1f | Pub Delay Latency (us) avg: %4.1f - "
        "50%%: %4.1f - 99%%: %4.1f - 99.9%%: %4.1f - Max: %4.1f",
        publish_rate,
        stats.bytes_sent / elapsed_s / MIB,
        error_rate,
        consume_rate,
        stats.bytes_received / elapsed_s / MIB,
        backlog / 1000.0,
        histograms.mean(publish) / 1000.0,
        histograms.value_at_percentile(publish, 50) / 1000.0,
        histograms.value_at_percentile(publish, 99) / 1000.0,
        histograms.value_at_percentile(publish, 99.9) / 1000.0,
        histograms.max_value(publish) / 1000.0,
        histograms.mean(delay),
        float(histograms.value_at_percentile(delay, 50)),
        float(histograms.value_at_percentile(delay, 99)),
        float(histograms.value_at_percentile(delay, 99.9)),
        float(histograms.max_value(delay)),
    )
    return PeriodSummary(
        publish_rate_per_s=publish_rate,
        consume_rate_per_s=consume_rate,
        publish_error_rate_per_s=error_rate,
        backlog_messages=backlog,
        publish_latency_p99_us=float(histograms.value_at_percentile(publish, 99)),
    )


async def _read_cumulative(worker: Worker, result: TestResult) -> CumulativeLatencies:
    cumulative = await worker.get_cumulative_latencies()
    publish = _merge(cumulative.publish_latency, histograms.new_publish_histogram)
    delay = _merge(cumulative.publish_delay_latency, histograms.new_publish_histogram)
    e2e = _merge(cumulative.end_to_end_latency, histograms.new_end_to_end_histogram)
    add_aggregates(result, publish, delay, e2e)
    logger.info(
        "Aggregated Pub Latency (ms) avg: %4.1f - 50%%: %4.1f - 95%%: %4.1f - "
        "99%%: %4.1f - 99.9%%: %4.1f - 99.99%%: %4.1f - Max: %4.1f | "
        "Pub Delay (us) avg: %4.1f - 50%%: %4.1f - 95%%: %4.1f - 99%%: %4.1f - "
        "99.9%%: %4.1f - 99.99%%: %4.1f - Max: %4.1f",
        histograms.mean(publish) / 1000.0,
        *(
            histograms.value_at_percentile(publish, p) / 1000.0
            for p in (50, 95, 99, 99.9, 99.99)
        ),
        histograms.max_value(publish) / 1000.0,
        histograms.mean(delay),
        *(
            float(histograms.value_at_percentile(delay, p))
            for p in (50, 95, 99, 99.9, 99.99)
        ),
        float(histograms.max_value(delay)),
    )
    return cumulative
