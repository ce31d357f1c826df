"""`bench csv`: OMB's CSV summary of a folder of result files (OMB's `--csv`).

The table must read exactly as the one OMB's `ResultsToCsv` writes for the
same files, so its arithmetic is reproduced here step for step:

* Each result gets two Java HdrHistograms (2.1.12) built as
  `new Histogram(10_000_000, 1)`: values from 1 up, one significant digit.
  Every period rate of `publishRate` (resp. `consumeRate`) is cut to a long
  as Java's `Double.longValue()` does (towards zero) and recorded with a
  count of 2.
* The columns are that histogram's `getMinNonZeroValue()`, `getMean()`,
  `getStdDeviation()` and `getMaxValue()`. OMB asks for the minimum
  *non-zero* value, so a period with a rate below 1 msg/s does not show as
  the minimum, and a histogram with no non-zero value reports Java's
  `Long.MAX_VALUE`.
* Numbers are laid out by `MessageFormat` patterns: `#` for everything but
  the standard deviations, which use `#.##`; both round half to even, and
  `#.##` writes no leading zero (0.5 is `.5`).

One histogram of that shape has 20 buckets of 16 to 32 slots each: values
below 32 count one by one, and every further power of two doubles the
width of a slot (50,000 msg/s lands in a slot 2,048 wide). So the figures
are coarse by design; they are OMB's, not a precise summary.

Where this differs from OMB's tool, by choice:

* The CSV goes into the results folder (OMB writes it to the current
  directory), and its path is printed.
* A missing or empty folder, or a `*.json` file that is not an OMB result,
  stops the command with a one-line error (exit status 2); OMB logs a stack
  trace and writes nothing. A result must have the seven keys the table
  reads; keys OMB's `TestResult` lacks are tolerated, since OMB versions
  differ in them (some have 99.999th-percentile keys).
* Lines end with `\\n` and decimals use `.` whatever the platform and locale
  (OMB uses the JVM's line separator and default locale).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Final

from aioredismq.errors import ConfigError
from reports.results import read_result_file
from runner.result import TestResult

__all__ = [
    "DESCRIPTION",
    "HEADER",
    "HELP",
    "NAME",
    "RateSummary",
    "add_arguments",
    "csv_row",
    "csv_text",
    "java_decimal",
    "main",
    "summarize_rates",
]

NAME = "csv"
HELP = "summarize a folder of OMB result files as OMB's CSV table"
DESCRIPTION = """\
Read every *.json result file in RESULTS_DIR (not sub-folders; sidecar
files, *.json.sidecar, are not results and are skipped) and write OMB's CSV
summary of them to RESULTS_DIR/results-<epoch seconds>.csv, one row per
result sorted by message size, topics and partitions. The columns and their
numbers are those of OMB's own `--csv` converter, including its coarse
one-significant-digit rate statistics.

examples:
  bench csv results/"""

HEADER: Final = (
    "topics,partitions,message-size,producers-per-topic,consumers-per-topic,"
    "prod-rate-min,prod-rate-avg,prod-rate-std-dev,prod-rate-max,"
    "con-rate-min,con-rate-avg,con-rate-std-dev,con-rate-max,"
)

# The keys the table reads; a JSON file without them is not an OMB result.
REQUIRED_KEYS: Final = (
    "messageSize",
    "topics",
    "partitions",
    "producersPerTopic",
    "consumersPerTopic",
    "publishRate",
    "consumeRate",
)

_LONG_MAX: Final = 2**63 - 1
_LONG_MIN: Final = -(2**63)

# The shape of Java's `new Histogram(10_000_000, 1)`. One significant digit
# needs 2 * 10**1 = 20 values at unit resolution; rounded up to a power of
# two that is 32 slots per bucket (5 bits). Each bucket after the first
# reuses only its upper 16 slots at twice the previous slot width. Covering
# 10,000,000 takes 20 buckets (32 << 19 = 16,777,216 is the first power of
# two past it), so the counts array ends at 2**24 - 1: Java records up to
# there and throws for anything higher, or for a negative value.
_SUB_BUCKET_BITS: Final = 5
_BUCKET_COUNT: Final = 20
_FIRST_UNRECORDABLE: Final = 1 << (_SUB_BUCKET_BITS + _BUCKET_COUNT - 1)
# OMB records each period rate twice; it changes no figure but the counts.
_COUNT_PER_PERIOD: Final = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "results_dir", metavar="RESULTS_DIR", help="folder of OMB result files"
    )


def main(args: argparse.Namespace) -> int:
    folder = Path(args.results_dir)
    results = [_load(path) for path in _result_files(folder)]
    text = csv_text(results)
    # OMB names the file after the current epoch second and overwrites a
    # file of that name, which only a second run within a second can meet.
    target = folder / f"results-{int(time.time())}.csv"
    try:
        with target.open("w", encoding="utf-8", newline="\n") as out:
            out.write(text)
    except OSError as err:
        raise ConfigError(
            str(folder),
            None,
            target.name,
            f"cannot write it ({err.strerror}); expected a writable folder",
        ) from err
    print(target)
    return 0


# --------------------------------------------------------------------------
# The table


@dataclass(frozen=True, slots=True)
class RateSummary:
    """Java's figures for one rate series' histogram."""

    min_non_zero: int
    mean: float
    std_deviation: float
    max: int


def csv_text(results: Sequence[tuple[str, TestResult]]) -> str:
    """The whole CSV file for (source, result) pairs given in file-name order.

    Python's sort is stable, as Java's stream sort is, so results with the
    same size, topics and partitions keep the order of their file names.
    """
    ordered = sorted(
        results,
        key=lambda item: (
            item[1].message_size_bytes,
            item[1].topics,
            item[1].partitions,
        ),
    )
    lines = [HEADER] + [csv_row(result, source) for source, result in ordered]
    return "".join(line + "\n" for line in lines)


def csv_row(result: TestResult, source: str = "result") -> str:
    """One data row (no trailing comma, unlike the header, as in OMB)."""
    published = summarize_rates(result.publish_rate, source, "publishRate")
    consumed = summarize_rates(result.consume_rate, source, "consumeRate")
    cells = [
        str(result.topics),
        str(result.partitions),
        str(result.message_size_bytes),
        str(result.producers_per_topic),
        str(result.consumers_per_topic),
    ]
    for summary in (published, consumed):
        cells += [
            str(summary.min_non_zero),
            java_decimal(summary.mean, 0),
            java_decimal(summary.std_deviation, 2),
            str(summary.max),
        ]
    return ",".join(cells)


def summarize_rates(
    rates: Sequence[float], source: str = "result", key: str = "rates"
) -> RateSummary:
    """Min (non-zero), mean, standard deviation and max as Java computes them.

    Raises ConfigError for a rate Java's histogram cannot hold (negative, or
    2**24 msg/s and above), where OMB's tool fails as well.
    """
    counts: dict[int, int] = {}  # lowest value of each slot -> count
    smallest_non_zero = _LONG_MAX
    largest = 0
    for rate in rates:
        value = _java_long(rate)
        if not 0 <= value < _FIRST_UNRECORDABLE:
            raise ConfigError(
                source,
                key,
                rate,
                "OMB's CSV summary records period rates in a histogram that holds "
                f"0 to {_FIRST_UNRECORDABLE - 1} msg/s, and fails on this one too",
            )
        lowest, _width = _slot(value)
        counts[lowest] = counts.get(lowest, 0) + _COUNT_PER_PERIOD
        if value != 0:
            smallest_non_zero = min(smallest_non_zero, value)
        largest = max(largest, value)

    min_non_zero = _LONG_MAX
    if smallest_non_zero != _LONG_MAX:
        min_non_zero = _slot(smallest_non_zero)[0]
    max_value = 0
    if largest != 0:
        lowest, width = _slot(largest)
        max_value = lowest + width - 1  # Java's highest equivalent value
    mean, std_deviation = _mean_and_std_deviation(counts)
    return RateSummary(min_non_zero, mean, std_deviation, max_value)


def _mean_and_std_deviation(counts: dict[int, int]) -> tuple[float, float]:
    """Java's `getMean()` and `getStdDeviation()`, operation for operation.

    Both walk the occupied slots in ascending order and stand each slot in
    by its median equivalent value (lowest + width / 2, rounded down); the
    sums are doubles accumulated in that order, so the last bits match.
    """
    total_count = sum(counts.values())
    if total_count == 0:
        return 0.0, 0.0
    medians = []
    for lowest in sorted(counts):
        _, width = _slot(lowest)
        medians.append((lowest + (width >> 1), counts[lowest]))
    total_value = 0.0
    for median, count in medians:
        total_value += float(median) * float(count)
    mean = (total_value * 1.0) / float(total_count)
    deviation_total = 0.0
    for median, count in medians:
        deviation = (float(median) * 1.0) - mean
        deviation_total += (deviation * deviation) * float(count)
    return mean, math.sqrt(deviation_total / float(total_count))


def _slot(value: int) -> tuple[int, int]:
    """Lowest value and width of the histogram slot holding `value` (>= 0).

    Values below 32 have slots of width 1; from there each power of two
    doubles the width, so a value of n bits lies in a slot 2**(n - 5) wide.
    """
    shift = max(value.bit_length() - _SUB_BUCKET_BITS, 0)
    return (value >> shift) << shift, 1 << shift


def _java_long(value: float) -> int:
    """Java's `(long) d`: towards zero, NaN to 0, saturating at the ends."""
    if math.isnan(value):
        return 0
    if value >= 2.0**63:
        return _LONG_MAX
    if value <= -(2.0**63):
        return _LONG_MIN
    return math.trunc(value)


def java_decimal(value: float, max_fraction_digits: int) -> str:
    """Java `DecimalFormat("#")` (0 digits) or `("#.##")` (2) of a double >= 0.

    DecimalFormat rounds the double's exact binary value half to even (since
    JDK 8), which `Decimal(value)` reproduces. The `#` patterns ask for no
    minimum integer digit, so a value below 1 prints as `.5`, and a value
    that rounds to nothing at all prints as `0`. Unused fraction digits are
    dropped (`#.##` of 2.5 is `2.5`).

    Negative values never occur here (means and deviations of rates >= 0),
    and Java's handling of them (such as `-0`) is not reproduced.
    """
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"expected a finite number >= 0, got {value!r}")
    quantum = Decimal(1).scaleb(-max_fraction_digits)
    rounded = Decimal(value).quantize(quantum, rounding=ROUND_HALF_EVEN)
    whole, _, fraction = f"{rounded:f}".partition(".")
    whole = whole.lstrip("0")
    fraction = fraction.rstrip("0")
    if not whole and not fraction:
        return "0"
    return whole + ("." + fraction if fraction else "")


# --------------------------------------------------------------------------
# Reading the folder


def _result_files(folder: Path) -> list[Path]:
    expected = "expected a folder holding OMB result files (*.json)"
    if not folder.exists():
        raise ConfigError(
            "RESULTS_DIR", None, str(folder), "no such folder; " + expected
        )
    if not folder.is_dir():
        raise ConfigError("RESULTS_DIR", None, str(folder), "not a folder; " + expected)
    try:
        entries = list(folder.iterdir())
    except OSError as err:
        raise ConfigError(
            "RESULTS_DIR", None, str(folder), f"cannot list it ({err.strerror})"
        ) from err
    # OMB takes regular files whose name ends in ".json", which leaves out
    # our sidecars (".json.sidecar"), and sorts them by path as Java compares
    # strings (UTF-16 code units; big-endian UTF-16 bytes sort the same way).
    files = [p for p in entries if p.name.endswith(".json") and p.is_file()]
    if not files:
        raise ConfigError(
            "RESULTS_DIR", None, str(folder), "it holds no *.json file; " + expected
        )
    return sorted(files, key=lambda path: path.name.encode("utf-16-be"))


def _load(path: Path) -> tuple[str, TestResult]:
    return str(path), read_result_file(path, REQUIRED_KEYS)
