"""`bench run` end to end through the real command line and a real server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aioredismq.connection import ConnectionSettings

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "workloads" / "smoke.yaml"

SERIES_KEYS = [
    "publishRate",
    "publishErrorRate",
    "consumeRate",
    "backlog",
    *(
        f"publishLatency{s}"
        for s in ("Avg", "50pct", "75pct", "95pct", "99pct", "999pct", "9999pct", "Max")
    ),
    *(
        f"publishDelayLatency{s}"
        for s in ("Avg", "50pct", "75pct", "95pct", "99pct", "999pct", "9999pct", "Max")
    ),
    *(
        f"endToEndLatency{s}"
        for s in ("Avg", "50pct", "75pct", "95pct", "99pct", "999pct", "9999pct", "Max")
    ),
]
FAMILIES = ("PublishLatency", "PublishDelayLatency", "EndToEndLatency")
PERCENTILES = ("50pct", "75pct", "95pct", "99pct", "999pct", "9999pct")
AGGREGATE_KEYS = [
    f"aggregated{family}{suffix}"
    for family in FAMILIES
    for suffix in ("Avg", *PERCENTILES, "Max")
]
HEADER_KEYS = [
    "workload",
    "driver",
    "messageSize",
    "topics",
    "partitions",
    "producersPerTopic",
    "consumersPerTopic",
]


def bench(
    *args: str, cwd: Path, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def write_driver_file(path: Path, redis_url: str, name: str = "Redis Test") -> Path:
    """A driver file pointing at the test server."""
    settings = ConnectionSettings.from_url(redis_url)
    path.write_text(
        f"name: {name}\n"
        "driverClass: driver.redis_streams.RedisStreamsDriver\n"
        f"redisHost: {settings.host}\nredisPort: {settings.port}\n"
    )
    return path


@pytest.fixture(scope="module")
def smoke_run(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("smoke")
    driver = write_driver_file(tmp / "driver.yaml", redis_url)
    result = tmp / "result.json"
    done = bench(
        "run",
        "-d",
        str(driver),
        "-o",
        str(result),
        "--period",
        "2s",
        "--warmup-duration",
        "2s",
        "--test-duration",
        "6s",
        str(SMOKE),
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return {
        "result": json.loads(result.read_text()),
        "text": result.read_text(),
        "sidecar": json.loads(Path(str(result) + ".sidecar").read_text()),
        "stderr": done.stderr,
    }


def test_result_has_every_omb_key(smoke_run: dict[str, Any]) -> None:
    result = smoke_run["result"]
    expected = set(HEADER_KEYS + SERIES_KEYS + AGGREGATE_KEYS) | {
        "aggregatedPublishLatencyQuantiles",
        "aggregatedPublishDelayLatencyQuantiles",
        "aggregatedEndToEndLatencyQuantiles",
    }
    assert set(result) == expected
    assert result["driver"] == "Redis Test"
    assert result["workload"] == "smoke / 1 topic / 4 partitions / 1Kb"
    assert (result["topics"], result["partitions"], result["messageSize"]) == (
        1,
        4,
        1024,
    )


def test_series_have_equal_lengths(smoke_run: dict[str, Any]) -> None:
    result = smoke_run["result"]
    lengths = {key: len(result[key]) for key in SERIES_KEYS}
    assert set(lengths.values()) == {3}, lengths


def test_rates_are_near_target(smoke_run: dict[str, Any]) -> None:
    result = smoke_run["result"]
    for rate in result["publishRate"]:
        assert rate == pytest.approx(2000, rel=0.05)
    for rate in result["consumeRate"]:
        assert rate == pytest.approx(2000, rel=0.10)
    assert all(e == 0 for e in result["publishErrorRate"])


def test_everything_sent_was_received(smoke_run: dict[str, Any]) -> None:
    counters = smoke_run["sidecar"]["counters"]
    assert counters["messageSendErrors"] == 0
    assert counters["messagesSent"] > 15_000
    assert counters["messagesReceived"] == counters["messagesSent"]


def test_latencies_are_ordered_and_positive(smoke_run: dict[str, Any]) -> None:
    result = smoke_run["result"]
    for family in ("PublishLatency", "EndToEndLatency"):
        p50 = result[f"aggregated{family}50pct"]
        p99 = result[f"aggregated{family}99pct"]
        top = result[f"aggregated{family}Max"]
        assert 0 < p50 <= p99 <= top, family
    # Publish delay may be 0 µs at p50 when the sender is on time.
    delay = [result[f"aggregatedPublishDelayLatency{p}"] for p in PERCENTILES]
    assert delay == sorted(delay)
    assert delay[-1] <= result["aggregatedPublishDelayLatencyMax"]
    assert all(isinstance(v, int) for v in delay)
    quantiles = result["aggregatedEndToEndLatencyQuantiles"]
    assert list(quantiles)[-1] == "100.0"
    assert quantiles["100.0"] == result["aggregatedEndToEndLatencyMax"]


def test_stats_line_is_logged_each_period(smoke_run: dict[str, Any]) -> None:
    lines = [ln for ln in smoke_run["stderr"].splitlines() if "Pub rate" in ln]
    # one warm-up period and three measured ones
    assert len(lines) == 4
    assert re.search(r"Pub rate +\d+\.\d msg/s / +\d+\.\d MB/s \| Pub err", lines[-1])


def test_sidecar_names_the_server(smoke_run: dict[str, Any]) -> None:
    sidecar = smoke_run["sidecar"]
    assert sidecar["server"]["server"] in ("valkey", "redis")
    assert re.fullmatch(r"\d+\.\d+\.\d+", sidecar["server"]["version"])
    assert len(sidecar["workers"]) == 2
    assert sidecar["workloadFile"].endswith("smoke.yaml")


def test_run_leaves_no_streams(redis_url: str, smoke_run: dict[str, Any]) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        leftovers = [k for k in client.scan_iter("*openmessaging*")]
    finally:
        client.close()
    assert leftovers == []
