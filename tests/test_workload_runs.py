"""A representative subset of OMB's workload files, each run briefly for real.

`scripts/run_all_workloads.py` runs every file the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from test_cli_run import ROOT, bench, write_driver_file

SUBSET = [
    "simple-workload.yaml",  # 10 partitions, 10k msg/s
    "1-topic-1-partition-100b.yaml",  # 50k msg/s on one stream
    "1-topic-3-partition-100b-3producers.yaml",  # rate 0, three producers
    "max-rate-1-topic-16-partitions-100b.yaml",  # rate 0
    # 1,000 random payloads: a megabyte-sized request to the worker process
    "max-rate-1-topic-1-partition-1p-1c-1kb.yaml",
    "backlog-1-topic-1-partition-1kb.yaml",  # 100 GB asked: cannot be built
]


@pytest.mark.parametrize("name", SUBSET)
def test_workload_runs_to_a_valid_result(
    name: str, tmp_path: Path, redis_url: str
) -> None:
    driver = write_driver_file(tmp_path / "driver.yaml", redis_url)
    result_path = tmp_path / "result.json"
    done = bench(
        "run", "-d", str(driver), "-o", str(result_path),
        "--test-duration", "3s", "--warmup-duration", "1s", "--period", "3s",
        "--drain-timeout", "3s", str(ROOT / "workloads" / name),
        cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(result_path.read_text())
    lengths = {len(v) for v in result.values() if isinstance(v, list)}
    assert len(lengths) == 1 and 0 not in lengths
    assert all(rate > 0 for rate in result["publishRate"])
    sidecar = json.loads(Path(str(result_path) + ".sidecar").read_text())
    if "backlog" in name:
        assert sidecar["backlog"]["drainComplete"] is False
        # The phases are named as they begin (the progress display shows them).
        assert "runner.benchmark: building backlog" in done.stderr
        assert "runner.benchmark: draining backlog" in done.stderr
        assert "drain incomplete" in done.stderr
    discovers_rate = (
        yaml.safe_load((ROOT / "workloads" / name).read_text())["producerRate"] == 0
    )
    assert bool(sidecar["chosenRates"]) == discovers_rate
    # Measuring starts after the warm-up (1 s) and, for a backlog, its build.
    assert sidecar["measuredFromSeconds"] >= 1.0
