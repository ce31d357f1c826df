"""Each script in examples/ runs to the end and prints the facts it shows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 20


def run_script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run examples/<name> as a new user would, from the repository root."""
    return subprocess.run(
        [sys.executable, f"examples/{name}", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def run_example(name: str, *args: str) -> str:
    """The output of an example that must succeed."""
    done = run_script(name, *args)
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_basic(redis_url: str) -> None:
    out = run_example("basic.py", "--redis-url", redis_url)
    assert out.count("received user-") == 5
    assert "received 5 of 5 messages" in out
    assert "pending after the loop: 0" in out


def test_fanout(redis_url: str) -> None:
    out = run_example("fanout.py", "--redis-url", redis_url)
    assert "live   (start $) received 3: only the new ones" in out
    assert "replay (start 0) received 5: history and new" in out
    assert "live   got history" not in out


def test_producers(redis_url: str) -> None:
    out = run_example("producers.py", "--redis-url", redis_url)
    assert "3 producers sent 120 messages concurrently" in out
    rows = re.findall(r"account-\d +\[(\d)\] +(\d) +(\d+) +(\w+)", out)
    assert len(rows) == 5
    for found, expected, count, in_order in rows:
        assert (found, count, in_order) == (expected, "24", "True")


def test_group(redis_url: str) -> None:
    out = run_example("group.py", "--redis-url", redis_url)
    counts = {name: int(n) for name, n in re.findall(r"(worker-\d) handled (\d+)", out)}
    assert sorted(counts) == ["worker-1", "worker-2", "worker-3"]
    assert sum(counts.values()) == 60
    assert "total handled: 60 of 60" in out
    assert "delivered by the group: 60" in out
    assert "pending: 0" in out


def test_recovery(redis_url: str) -> None:
    out = run_example("recovery.py", "--redis-url", redis_url)
    assert "worker-a took 6 messages and crashed without acking" in out
    assert "pending per member: {'worker-a': 6}" in out
    handled = re.findall(r"worker-b handled (order-\d) \(delivery #(\d+)\)", out)
    assert sorted(order for order, _ in handled) == [f"order-{i}" for i in range(1, 6)]
    # Delivery 1 went to worker-a; every claim counts one more.
    assert all(int(n) >= 2 for _, n in handled)
    assert "pending in total: 0" in out
    assert "dead letters: 1" in out
    assert "payload           poison" in out
    assert "origin-group      shipping" in out
    assert "deliveries        4" in out
    assert "last-error        cannot parse order" in out


def test_web(redis_url: str) -> None:
    out = run_example("web.py", "--redis-url", redis_url)
    ids = re.findall(r"-> HTTP/1\.1 200 OK, id (\d+-\d+)", out)
    assert len(ids) == 3
    for entry_id in ids:
        assert f"stored {entry_id}: " in out
    assert "messages in the topic: 3" in out


def test_example_starts_and_stops_its_own_server() -> None:
    out = run_example("basic.py")
    assert out.startswith("started valkey-server")
    assert out.rstrip().endswith("server stopped")
    assert "pending after the loop: 0" in out


def test_unreachable_server_is_one_line_not_a_traceback() -> None:
    done = run_script("basic.py", "--redis-url", "redis://127.0.0.1:1")
    assert done.returncode == 1
    assert done.stderr.startswith("error: cannot reach a Redis server")
    assert "Traceback" not in done.stderr
