"""`bench report`: one HTML page of charts and tables for result files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from aioredismq.errors import ConfigError
from reports.results import load_runs

__all__ = ["DEFAULT_OUTPUT", "DESCRIPTION", "HELP", "NAME", "add_arguments", "main"]

NAME = "report"
HELP = "render results as an HTML page with charts"
DESCRIPTION = """\
Read OMB result files (from `bench run` or from OMB's own tool) and write a
self-contained HTML page, DIR/index.html, with its charts embedded; each
chart is also written to DIR as a PNG file. Results are grouped by workload
name, and every result of a workload is drawn into the same charts,
labelled by driver and start time: publish and consume rate, backlog,
publish error rate, publish latency p99, publish delay p99, end-to-end
latency p95 and average over time, and latency by percentile from 90 % to
99.999 %. A table per workload gives rates and latency percentiles, and,
where a sidecar lies beside the result, the server, workers, run settings
and message counts. A result file must have at least the keys workload,
driver, publishRate and consumeRate.

Writing into a folder that holds an earlier report replaces it: its
index.html and chart files (NN-*.png) are removed first; nothing else there
is touched. A report that fails leaves no folder it made.

Prints the page's path, or with --json a JSON summary of the report (its
path, every result's figures, every chart file; null where there is no
data).

examples:
  bench report result.json
  bench report -o report/ results/*.json
  bench report --json results/*.json | jq '.workloads[].runs[].figures'"""

DEFAULT_OUTPUT = "report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "results", nargs="+", metavar="RESULT.json", help="OMB result files"
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        default=DEFAULT_OUTPUT,
        help=f"folder for index.html and the chart files (default: {DEFAULT_OUTPUT})",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print a JSON summary of the report instead of the page's path",
    )


def main(args: argparse.Namespace) -> int:
    if not args.output:
        # Path("") is the current folder, which the user did not name.
        raise ConfigError(
            "--output", None, args.output, "an empty path; expected a folder path"
        )
    runs = load_runs(args.results)  # every file is read before anything is written

    # Imported here: matplotlib takes a moment to load, which no other
    # subcommand, and no bad file name, should have to wait for.
    from reports.report import write_report

    index, report = write_report(runs, Path(args.output))
    if args.json:
        print(json.dumps(report.summary(index), indent=2, allow_nan=False))
    else:
        print(index)
    return 0
