"""Max-rate discovery rules, without a server."""

from __future__ import annotations

import pytest

from runner.control import _ControlState, next_rate


def test_healthy_periods_double_the_step() -> None:
    state = _ControlState(rate_per_s=10_000)
    # 1 s period, everything sent and received: +100 % (step starts at 1).
    assert next_rate(state, 1.0, 10_000, 10_000, 1) == 20_000
    assert state.ramping_factor == 1.0


def test_a_receive_backlog_cuts_to_what_consumers_took() -> None:
    state = _ControlState(rate_per_s=20_000)
    # 20,000 sent, 15,000 received in 1 s: 5,000 behind.
    rate = next_rate(state, 1.0, 20_000, 15_000, 1)
    # Consumers took 15,000/s; a fifth of the 5,000 backlog is drained.
    assert rate == pytest.approx(14_000)
    assert state.ramping_factor == 0.5
    # OMB's rule would give min(15,000, 20,000 - 5,000) = 15,000 here, but
    # 0 once the backlog exceeds one period's worth; ours never goes below
    # half of what was consumed.
    state = _ControlState(rate_per_s=1_000)
    assert next_rate(state, 1.0, 100_000, 1_000, 1) == pytest.approx(500)


def test_backlog_counts_every_subscription() -> None:
    state = _ControlState(rate_per_s=10_000)
    # Two subscriptions: 10,000 sent must be received 20,000 times. Only
    # 12,000 receipts means a backlog, which OMB's rule misses.
    rate = next_rate(state, 1.0, 10_000, 12_000, 2)
    assert rate < 10_000


def test_producers_that_fall_behind_set_the_rate() -> None:
    state = _ControlState(rate_per_s=50_000)
    rate = next_rate(state, 1.0, 30_000, 30_000, 1)
    assert rate == 30_000  # never above what producers achieved


def test_rate_never_reaches_zero() -> None:
    state = _ControlState(rate_per_s=10)
    assert next_rate(state, 1.0, 5_000, 0, 1) == 1.0
