"""`bench compare`: a candidate's results against a baseline's; a CI gate.

The arithmetic and the rule that tells a change from noise are in
`reports.compare`; this module reads the flags and files, prints the
table and writes the optional files.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aioredismq.errors import ConfigError, OutputFileError
from reports.compare import (
    ALL_METRICS,
    DEFAULT_THRESHOLDS_PCT,
    check_same_workload,
    compare_runs,
    github_benchmark_entries,
    markdown_table,
    parse_thresholds,
    to_json,
    write_json,
)
from reports.results import ResultRun, load_runs

__all__ = ["DESCRIPTION", "HELP", "NAME", "add_arguments", "main"]

logger = logging.getLogger(__name__)

NAME = "compare"
HELP = "compare candidate results with a baseline; gate CI"

EXIT_REGRESSED = 1

_DEFAULTS = "\n".join(
    f"  {name:<26} {pct:g} %" for name, pct in DEFAULT_THRESHOLDS_PCT.items()
)
_OTHERS = textwrap.fill(
    ", ".join(name for name in ALL_METRICS if name not in DEFAULT_THRESHOLDS_PCT),
    width=76,
    initial_indent="  ",
    subsequent_indent="  ",
)

DESCRIPTION = f"""\
Compare the result files of a candidate with those of a baseline (OMB result
JSON from `bench run` or from OMB's Java tool; all of the same workload) and
print a markdown table: metric, baseline, candidate, change, threshold and
verdict. Exit status 1 when any metric regressed past its threshold or is
missing from the candidate, 0 otherwise, 2 on bad input (a file without
workload, driver, publishRate and consumeRate is not a result).

How a value is made:
  latencies   each run's aggregated figure (OMB's aggregated* keys; publish
              and end-to-end latency in ms, publish delay in us); a file
              without the key has no value (never 0)
  rates       publishRate and consumeRate: each run's mean of its measured
              periods
  max rate    maxSustainableRate, only for max-rate discovery runs
              (producerRate 0, from the sidecar): the median of the rates
              the controller held during the measured phase
  per side    the median over that side's runs

Higher rates and lower latencies are better. The verdict:
  ok          the change is within the threshold
  regressed   worse by more than the threshold, and the candidate's value
  improved    (better, for `improved`) lies outside the interquartile
              range (25th to 75th percentile) of the baseline's per-period
              values of that metric, pooled over all baseline runs
  noise       past the threshold but inside that range: the baseline
              moved as much on its own in a typical period
  missing     the baseline has the value, the candidate lacks it (no key,
              NaN, no periods): the candidate stopped reporting it
  n/a         the baseline lacks the value
A baseline without per-period values is judged by the threshold alone.
`regressed` and `missing` fail.

Default thresholds (the table's rows; maxSustainableRate only where known):
{_DEFAULTS}
--threshold also takes any other aggregated metric, which adds a row:
{_OTHERS}

With --github-benchmark DIR, DIR gets smaller-is-better.json (latencies)
and bigger-is-better.json (rates), the candidate's values in
github-action-benchmark's format for its customSmallerIsBetter and
customBiggerIsBetter tools.

examples:
  bench compare base-*.json --candidate cand-*.json
  bench compare base.json --candidate cand.json \\
      --threshold publishLatency99pct=10% --threshold consumeRate=2%
  bench compare base-*.json --candidate cand-*.json --json compare.json \\
      --github-benchmark benchmark-data/"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "baseline", nargs="+", metavar="BASELINE.json", help="baseline result files"
    )
    parser.add_argument(
        "--candidate",
        nargs="+",
        required=True,
        metavar="CANDIDATE.json",
        help="candidate result files",
    )
    parser.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="METRIC=PCT",
        help="change in percent a metric may show before it counts, e.g. "
        "publishLatency99pct=10%%; "
        "repeat the flag or separate items with commas",
    )
    parser.add_argument(
        "--json", metavar="PATH", help="also write the comparison as JSON to PATH"
    )
    parser.add_argument(
        "--github-benchmark",
        metavar="DIR",
        help="also write the candidate's values for github-action-benchmark "
        "into DIR (created if missing)",
    )


def main(args: argparse.Namespace) -> int:
    # Everything is read and checked before anything is written.
    thresholds = parse_thresholds(args.threshold, "--threshold")
    json_path = _json_target(args.json)
    github_dir = _github_target(args.github_benchmark)
    baseline = load_runs(args.baseline)
    candidate = load_runs(args.candidate)
    check_same_workload(baseline + candidate)
    _warn_of_shared_files(baseline, candidate)

    comparison = compare_runs(baseline, candidate, thresholds)
    outputs: list[tuple[Path, Any, str]] = []
    if json_path is not None:
        outputs.append((json_path, to_json(comparison), "comparison"))
    if github_dir is not None:
        for name, entries in github_benchmark_entries(comparison).items():
            outputs.append((github_dir / name, entries, "github-action-benchmark file"))
    # The files first: a file that cannot be written is bad input (exit 2),
    # which a table already printed with its verdict would contradict.
    _write_all(outputs, github_dir)
    print(markdown_table(comparison), end="")
    return EXIT_REGRESSED if comparison.failed else 0


def _warn_of_shared_files(
    baseline: Sequence[ResultRun], candidate: Sequence[ResultRun]
) -> None:
    for cand in candidate:
        for base in baseline:
            if os.path.samefile(base.path, cand.path):
                logger.warning(
                    "%s is both a baseline and a candidate file: that run is "
                    "compared with itself",
                    cand.path,
                )
                break


def _write_all(outputs: Sequence[tuple[Path, Any, str]], folder: Path | None) -> None:
    """Write every file, or on a failure none that this call made."""
    made: list[Path] = []
    created: list[Path] = []
    try:
        if folder is not None:
            made = [p for p in (folder, *folder.parents) if not p.exists()]
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                reason = err.strerror or type(err).__name__
                raise OutputFileError(str(folder), "folder", reason) from err
        for path, document, what in outputs:
            existed = path.exists()
            write_json(path, document, what)
            if not existed:
                created.append(path)
            logger.info("wrote %s", path)
    except BaseException:
        for path in created:
            with contextlib.suppress(OSError):
                path.unlink()
        for made_folder in made:  # deepest first
            with contextlib.suppress(OSError):
                made_folder.rmdir()
        raise


def _json_target(text: str | None) -> Path | None:
    if text is None:
        return None
    if not text:
        raise ConfigError("--json", None, text, "an empty path; expected a file path")
    path = Path(text)
    if path.is_dir():
        raise ConfigError("--json", None, text, "a folder; expected a file path")
    if not path.parent.is_dir():
        raise ConfigError(
            "--json",
            None,
            text,
            f"its folder {str(path.parent)!r} does not exist; expected a file "
            "path in an existing folder",
        )
    return path


def _github_target(text: str | None) -> Path | None:
    if text is None:
        return None
    if not text:
        # Path("") is the current folder, which the user did not name.
        raise ConfigError(
            "--github-benchmark", None, text, "an empty path; expected a folder path"
        )
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise ConfigError(
            "--github-benchmark", None, text, "not a folder; expected a folder path"
        )
    return path
