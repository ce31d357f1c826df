"""`bench validate`: check workload files without running anything."""

from __future__ import annotations

import argparse
import sys

from aioredismq.errors import ConfigError
from runner.workload import Workload, load_workload

__all__ = ["DESCRIPTION", "HELP", "NAME", "add_arguments", "describe", "main"]

NAME = "validate"
HELP = "check workload files without running them"
DESCRIPTION = """\
Read and check each workload file exactly as `bench run` would before it
starts any load (keys, counts, payload file and its size, durations), and
print one line per file: its name, topics x partitions, message size, rate
and durations.

Every file is checked, even after a bad one, so one call lists every
problem: each bad file gets one error line on stderr. The exit status is 0
when all files are valid and 2 when any is not.

Payload paths in workload files are relative to the current directory, as
in OMB, so run this from the directory `bench run` will be run from.

examples:
  bench validate workloads/*.yaml
  bench validate workloads/1-topic-16-partitions.yaml"""

EXIT_INVALID = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "workloads", nargs="+", metavar="WORKLOAD.yaml", help="OMB workload files"
    )


def main(args: argparse.Namespace) -> int:
    # Each file is loaded on its own, not through load_workloads: a bad file
    # must not hide the verdict on the files after it.
    status = 0
    for path in args.workloads:
        try:
            workload = load_workload(path)
        except ConfigError as err:
            print(f"bench {NAME}: error: {err}", file=sys.stderr)
            status = EXIT_INVALID
            continue
        print(describe(workload))
    return status


def describe(workload: Workload) -> str:
    """One line: what a run of this workload would do, in the file's terms."""
    name = "(no name)" if workload.name is None else repr(workload.name)
    shape = (
        f"{_count(workload.topics, 'topic')} x "
        f"{_count(workload.partitions_per_topic, 'partition')}"
    )
    parts = [
        shape,
        f"{workload.message_size_bytes} B",
        _rate(workload.producer_rate_per_s),
        f"warm-up {_duration(workload.warmup_duration_s)}",
        f"test {_duration(workload.test_duration_s)}",
    ]
    if workload.consumer_backlog_size_gb > 0:
        parts.append(f"backlog {workload.consumer_backlog_size_gb} GB")
    return f"{workload.source}: {name}: " + ", ".join(parts)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _rate(per_s: float) -> str:
    if per_s == 0:
        return "max-rate discovery"
    return f"{_number(per_s)} msg/s"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "until stopped"  # OMB's testDurationMinutes: 0
    if seconds >= 60 and seconds % 60 == 0:
        return f"{_number(seconds / 60)}m"
    return f"{_number(seconds)}s"


def _number(value: float) -> str:
    # Whole numbers without a trailing ".0": the files hold integers mostly.
    return str(int(value)) if float(value).is_integer() else repr(value)
