"""Run every workload file briefly and check each gives a valid OMB result.

    python scripts/run_all_workloads.py [--test-duration 5s]
        [--warmup-duration 2s] [WORKLOAD.yaml ...]

Each file runs on its own private server (`bench run` without `-d`), with the
durations overridden so the whole set takes minutes, not days. A run passes
when `bench run` exits 0 and the result file holds every series with one
sample per period and a positive publish rate. Prints one line per file and
exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def check(result_path: Path) -> str | None:
    """Why the result is not valid, or None."""
    result = json.loads(result_path.read_text())
    lengths = {len(v) for v in result.values() if isinstance(v, list)}
    if len(lengths) != 1 or 0 in lengths:
        return f"series lengths differ or are empty: {sorted(lengths)}"
    if not any(rate > 0 for rate in result["publishRate"]):
        return "nothing was published"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workloads", nargs="*", type=Path)
    parser.add_argument("--test-duration", default="5s")
    parser.add_argument("--warmup-duration", default="2s")
    parser.add_argument("--drain-timeout", default="10s")
    args = parser.parse_args()
    files = args.workloads or sorted((ROOT / "workloads").glob("*.yaml"))
    failed = 0
    with tempfile.TemporaryDirectory() as out:
        for path in files:
            result_path = Path(out) / (path.stem + ".json")
            started = time.monotonic()
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "runner.cli",
                    "-q",
                    "run",
                    "--test-duration",
                    args.test_duration,
                    "--warmup-duration",
                    args.warmup_duration,
                    "--drain-timeout",
                    args.drain_timeout,
                    "--period",
                    args.test_duration,
                    "-o",
                    str(result_path),
                    str(path),
                ],  # fmt: skip
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            took_s = time.monotonic() - started
            problem = None
            if done.returncode != 0:
                lines = done.stderr.strip().splitlines()
                problem = f"exit {done.returncode}: {lines[-1] if lines else ''}"
            else:
                problem = check(result_path)
            failed += problem is not None
            verdict = "ok" if problem is None else f"FAILED ({problem})"
            print(f"{path.name:55} {took_s:6.1f} s  {verdict}", flush=True)
    print(f"{len(files) - failed} of {len(files)} workloads gave a valid result")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
