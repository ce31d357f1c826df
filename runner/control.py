"""What runs beside the stats loop: max-rate discovery and backlog build-up.

Max-rate discovery (`producerRate: 0`) follows OMB's controller: every 3 s it
compares what was sent and received with what the rate asked for, backs off
when a backlog forms and speeds up (doubling its step) while none does. Two
faults of OMB's version are avoided (both seen in practice):

- OMB cuts the rate to `expected - backlog`, which reaches 0 (then the 1 msg/s
  floor) after one bad period, and its step, halved on each cut, then climbs
  back at 1 % per period: runs sat near 1 msg/s for minutes. Here a cut goes
  to what the consumers actually received (less a share to drain the
  backlog), never below half of that, so the rate stays near what the
  system sustains.
- OMB compares sends with receipts without counting subscriptions, so with
  two subscriptions it never sees a receive backlog. Here receipts are
  compared with sends times subscriptions.

Backlog mode (`consumerBacklogSizeGB > 0`) pauses the consumers until the
backlog holds that many bytes, resumes them, and waits until it has drained
to `backlogDrainRatio`; the measured phase cannot end before. Building and
draining together get `drain_timeout_s`; past it the run ends with "drain
incomplete".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aioredismq.tasks import cancel_and_wait
from runner.protocol import Worker

__all__ = [
    "BUILDING_BACKLOG",
    "DRAINING_BACKLOG",
    "MEASURING",
    "BacklogPhase",
    "RateController",
    "next_rate",
]

# Phases of a run with a backlog to build and drain, as the run names them.
BUILDING_BACKLOG = "building backlog"
DRAINING_BACKLOG = "draining backlog"
MEASURING = "measuring"

logger = logging.getLogger(__name__)

START_RATE_PER_S = 10_000.0
CONTROL_PERIOD_S = 3.0
PUBLISH_BACKLOG_LIMIT = 1000
RECEIVE_BACKLOG_LIMIT = 1000
MIN_RAMPING_FACTOR = 0.01
MAX_RAMPING_FACTOR = 1.0
# A cut never goes below this share of what consumers received.
MIN_SHARE_OF_RECEIVED = 0.5
# A backlog is worked off over about this many control periods.
DRAIN_PERIODS = 5
GIB = 1 << 30
BACKLOG_POLL_S = 1.0
DRAIN_POLL_S = 0.1


@dataclass(slots=True)
class _ControlState:
    rate_per_s: float = START_RATE_PER_S
    ramping_factor: float = MAX_RAMPING_FACTOR
    previous_sent: int = 0
    previous_received: int = 0


def next_rate(
    state: _ControlState,
    period_s: float,
    total_sent: int,
    total_received: int,
    subscriptions: int,
) -> float:
    """The rate for the next period, updating `state` (see module notes)."""
    expected = state.rate_per_s * period_s
    sent = total_sent - state.previous_sent
    received = total_received - state.previous_received
    state.previous_sent, state.previous_received = total_sent, total_received
    receive_backlog = subscriptions * total_sent - total_received
    if receive_backlog > RECEIVE_BACKLOG_LIMIT:
        state.ramping_factor = max(MIN_RAMPING_FACTOR, state.ramping_factor / 2)
        consumed_per_s = received / subscriptions / period_s
        # Drain a fifth of the excess per period while sending near what the
        # consumers manage.
        drain_per_s = (receive_backlog / subscriptions) / DRAIN_PERIODS / period_s
        return max(
            consumed_per_s - drain_per_s, MIN_SHARE_OF_RECEIVED * consumed_per_s, 1.0
        )
    if expected - sent > PUBLISH_BACKLOG_LIMIT:
        # Producers could not keep up: go to what they achieved.
        state.ramping_factor = max(MIN_RAMPING_FACTOR, state.ramping_factor / 2)
        return max(sent / period_s, 1.0)
    state.ramping_factor = min(MAX_RAMPING_FACTOR, state.ramping_factor * 2)
    return state.rate_per_s * (1 + state.ramping_factor)


@dataclass(slots=True)
class RateController:
    """Adjusts the publish rate every control period until stopped."""

    worker: Worker
    subscriptions: int
    chosen: list[tuple[float, float]] = field(default_factory=list)
    _state: _ControlState = field(default_factory=_ControlState)
    _task: asyncio.Task[None] | None = None

    @property
    def start_rate_per_s(self) -> float:
        return START_RATE_PER_S

    def start(self, started_s: float | None = None) -> None:
        """Begin adjusting; `chosen` times count from `started_s` (monotonic
        seconds, default now), the moment the load started."""
        if started_s is None:
            started_s = time.monotonic()
        self._task = asyncio.create_task(self._run(started_s), name="rate controller")

    async def _run(self, started: float) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(CONTROL_PERIOD_S)
            counters = await self.worker.get_counters_stats()
            now = time.monotonic()
            rate = next_rate(
                self._state,
                now - last,
                counters.messages_sent,
                counters.messages_received,
                self.subscriptions,
            )
            last = now
            self._state.rate_per_s = rate
            self.chosen.append((round(now - started, 3), rate))
            logger.debug("publish rate set to %.1f msg/s", rate)
            await self.worker.adjust_publish_rate(rate)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None


@dataclass(slots=True)
class BacklogPhase:
    """Build a backlog with consumers paused, then drain it.

    `done` is set once the drain finished (or gave up) and the test
    duration after it has passed; the stats loop waits for it.
    """

    worker: Worker
    subscriptions: int
    message_size_bytes: int
    backlog_size_gb: float
    drain_ratio: float
    test_duration_s: float | None
    drain_timeout_s: float
    #: Told BUILDING_BACKLOG, DRAINING_BACKLOG, then MEASURING once the test
    #: duration after a completed drain begins.
    on_phase: Callable[[str], None] = lambda name: None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    status: dict[str, object] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="backlog")

    async def _backlog_messages(self) -> int:
        counters = await self.worker.get_counters_stats()
        return max(
            0, self.subscriptions * counters.messages_sent - counters.messages_received
        )

    async def _run(self) -> None:
        # One deadline for building and draining: a backlog that cannot be
        # built in time (100 GB does not fit in a test machine's memory) ends
        # the phase as surely as a drain that makes no progress.
        requested_bytes = self.backlog_size_gb * GIB
        deadline = time.monotonic() + self.drain_timeout_s
        await self.worker.pause_consumers()
        self.on_phase(BUILDING_BACKLOG)
        started = time.monotonic()
        logger.info(
            "building a backlog of %.3f GB with consumers paused", self.backlog_size_gb
        )
        built_enough = True
        while (await self._backlog_messages()) * self.message_size_bytes < (
            requested_bytes
        ):
            if time.monotonic() >= deadline:
                built_enough = False
                break
            await asyncio.sleep(BACKLOG_POLL_S)
        built = time.monotonic()
        self.status["buildSeconds"] = round(built - started, 3)
        self.status["buildComplete"] = built_enough
        await self.worker.resume_consumers()
        self.on_phase(DRAINING_BACKLOG)

        target = max(
            1000,
            int((1 - self.drain_ratio) * (requested_bytes / self.message_size_bytes)),
        )
        logger.info(
            "backlog %s in %.1f s; draining to %d messages",
            "built" if built_enough else "build stopped at the timeout",
            built - started,
            target,
        )
        while (backlog := await self._backlog_messages()) > target:
            if time.monotonic() >= deadline:
                logger.warning(
                    "drain incomplete: %d messages still queued after %.0f s "
                    "(target %d); finishing the run",
                    backlog, self.drain_timeout_s, target,
                )  # fmt: skip
                self.status.update(drainComplete=False, drainLeftMessages=backlog)
                break
            await asyncio.sleep(DRAIN_POLL_S)
        else:
            self.status["drainComplete"] = True
        self.status["drainSeconds"] = round(time.monotonic() - built, 3)
        if self.status.get("drainComplete") and self.test_duration_s:
            self.on_phase(MEASURING)
            await asyncio.sleep(self.test_duration_s)
        self.done.set()

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
