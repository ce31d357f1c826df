"""Comparing a candidate's results with a baseline's: the numbers of `bench compare`.

Each side is one or more result files of the same workload (several runs
per side even out a noisy machine). For every metric compared:

* **Value of a run.** A latency is the result's aggregated figure (for
  `publishLatency99pct`, OMB's `aggregatedPublishLatency99pct`, computed from
  every sample of the measured phase). A rate (`publishRate`, `consumeRate`)
  is the arithmetic mean of the measured periods' rates, as OMB's CSV
  summary averages them. `maxSustainableRate` is known only for a
  max-rate discovery run (`bench run` sidecar with `workload.producerRate`
  0 and a non-empty `chosenRates`): it is the median of the rates the
  controller held during the measured phase, i.e. the last rate chosen
  before the warm-up ended and every rate chosen after.
* **Value of a side.** The median of its runs' values (with two runs, their
  mean).
* **Change.** `(candidate - baseline) / baseline` in percent; higher rates
  and lower latencies are better, so a latency rise and a rate drop are
  the changes for the worse.
* **Spread.** The interquartile range (25th to 75th percentile) of the
  baseline's per-period values of the same metric, pooled over all baseline
  runs (for `publishLatency99pct` the `publishLatency99pct` series; for a
  rate its period rates; for `maxSustainableRate` the rates held). It is
  how far the baseline moved on its own in a typical period. The quartiles
  rather than lowest to highest: one spiky period (a 90 ms p99 on a shared
  runner) would otherwise widen the band so far that a doubled latency
  still read as noise.
* **Verdict.** `ok` when the change is within the metric's threshold
  (equal to it counts as within). Past the threshold, the change is real
  only when the candidate's value also lies outside the baseline's spread
  on the side the change went: then `regressed` (worse) or `improved`
  (better); inside the spread it is `noise`. A baseline without per-period
  values (a hand-made file) has no spread, and its changes are judged by
  the threshold alone. `missing` when the baseline has the value and the
  candidate lacks it (a key its file does not have, a non-finite figure, no
  periods, or no max-rate facts in some run): a candidate that stopped
  reporting a figure must not pass for one that kept it. `n/a` when the
  baseline lacks the value, whatever the candidate has. A key a file does
  not have is no value, never 0.

`regressed` and `missing` fail the comparison.
"""

from __future__ import annotations

import difflib
import json
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final

from aioredismq.errors import ConfigError
from reports.results import ResultRun, mean
from runner.files import write_text_safely
from runner.result import TestResult

__all__ = [
    "ALL_METRICS",
    "DEFAULT_THRESHOLDS_PCT",
    "GITHUB_BIGGER_FILE",
    "GITHUB_SMALLER_FILE",
    "RULE",
    "Comparison",
    "MetricRow",
    "MetricSpec",
    "SideFigures",
    "check_same_workload",
    "compare_runs",
    "github_benchmark_entries",
    "markdown_table",
    "max_sustainable_rate",
    "parse_thresholds",
    "to_json",
    "write_json",
]

OK, REGRESSED, IMPROVED, NOISE, MISSING, NOT_AVAILABLE = (
    "ok",
    "regressed",
    "improved",
    "noise",
    "missing",
    "n/a",
)

#: The one-sentence rule, repeated in the JSON output and the table's header.
RULE: Final = (
    "a change counts only when it is past its threshold and the candidate's "
    "value lies outside the interquartile range of the baseline's per-period "
    "values"
)

#: github-action-benchmark reads one direction per file.
GITHUB_SMALLER_FILE: Final = "smaller-is-better.json"
GITHUB_BIGGER_FILE: Final = "bigger-is-better.json"

MAX_RATE: Final = "maxSustainableRate"
_PCT_TOLERANCE: Final = 1e-9
_AGGREGATED: Final = "aggregated_"


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One comparable metric: its `--threshold` name, unit and direction."""

    name: str
    label: str
    unit: str
    bigger_is_better: bool
    #: The run's value, None when the run cannot tell.
    value: Callable[[ResultRun], float | None]
    #: The run's per-period values of the same metric (may be empty).
    periods: Callable[[ResultRun], list[float]]


# --------------------------------------------------------------------------
# Metrics


def _camel(snake: str) -> str:
    first, *rest = snake.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


_FAMILIES: Final = {
    "publish_latency": ("publish latency", "ms"),
    "publish_delay_latency": ("publish delay", "us"),
    "end_to_end_latency": ("end-to-end latency", "ms"),
}
_SUFFIX_LABELS: Final = {
    "avg": "mean",
    "50pct": "p50",
    "75pct": "p75",
    "95pct": "p95",
    "99pct": "p99",
    "999pct": "p99.9",
    "9999pct": "p99.99",
    "max": "max",
}


def _aggregated_spec(attribute: str) -> MetricSpec:
    series = attribute.removeprefix(_AGGREGATED)
    family, _, suffix = series.rpartition("_")
    label, unit = _FAMILIES[family]

    def value(run: ResultRun) -> float | None:
        if not run.has(attribute):  # the field's default 0 is no figure
            return None
        return _finite(float(getattr(run.result, attribute)))

    def periods(run: ResultRun) -> list[float]:
        return [float(v) for v in getattr(run.result, series)]

    return MetricSpec(
        _camel(series), f"{label} {_SUFFIX_LABELS[suffix]}", unit, False, value, periods
    )


def _rate_spec(name: str, attribute: str, label: str) -> MetricSpec:
    def periods(run: ResultRun) -> list[float]:
        return [float(v) for v in getattr(run.result, attribute)]

    def value(run: ResultRun) -> float | None:
        rates = periods(run)
        return _finite(mean(rates)) if rates else None

    return MetricSpec(name, label, "msg/s", True, value, periods)


def _max_rate_value(run: ResultRun) -> float | None:
    held = max_sustainable_rate(run.sidecar)
    return None if held is None else statistics.median(held)


def _max_rate_periods(run: ResultRun) -> list[float]:
    return max_sustainable_rate(run.sidecar) or []


def max_sustainable_rate(sidecar: Mapping[str, Any] | None) -> list[float] | None:
    """The rates a max-rate discovery held in the measured phase, or None.

    None unless the sidecar says `workload.producerRate` was 0 and lists
    `chosenRates`. `atSeconds` counts from the start of the load, and so does
    `measuredFromSeconds`, the start of the measured phase: the rate in force
    then (the last chosen at or before it) and every later one count.
    """
    if sidecar is None:
        return None
    workload = sidecar.get("workload")
    chosen = sidecar.get("chosenRates")
    if not isinstance(workload, Mapping) or not isinstance(chosen, list):
        return None
    if workload.get("producerRate") != 0:
        return None
    measured_from_s = sidecar.get("measuredFromSeconds")
    if not isinstance(measured_from_s, int | float):
        # Sidecars written before the field existed: the measured phase is
        # taken to begin when the warm-up was due to end, which is early by
        # the warm-up's closing reads (seconds on a loaded machine), so a
        # rate or two chosen in that gap counts as well.
        measured_from_s = workload.get("warmupDurationSeconds")
    if not isinstance(measured_from_s, int | float):
        measured_from_s = 0.0
    points: list[tuple[float, float]] = []
    for entry in chosen:
        if not isinstance(entry, Mapping):
            return None
        at_s, rate = entry.get("atSeconds"), entry.get("rate")
        if not isinstance(at_s, int | float) or not isinstance(rate, int | float):
            return None
        if math.isfinite(rate):
            points.append((float(at_s), float(rate)))
    points.sort()
    before = [rate for at_s, rate in points if at_s <= measured_from_s]
    held = before[-1:] + [rate for at_s, rate in points if at_s > measured_from_s]
    return held or None


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _all_metrics() -> dict[str, MetricSpec]:
    specs = [
        _rate_spec("publishRate", "publish_rate", "publish rate"),
        _rate_spec("consumeRate", "consume_rate", "consume rate"),
        MetricSpec(
            MAX_RATE,
            "max sustainable rate",
            "msg/s",
            True,
            _max_rate_value,
            _max_rate_periods,
        ),
    ]
    for item in fields(TestResult):
        # The aggregated scalars; the quantile maps are not one number.
        if item.name.startswith(_AGGREGATED) and item.type in ("float", "int"):
            specs.append(_aggregated_spec(item.name))
    return {spec.name: spec for spec in specs}


#: Every metric `--threshold` may name, by name.
ALL_METRICS: Final = _all_metrics()

#: The headline metrics, in table order, and their default thresholds (%).
DEFAULT_THRESHOLDS_PCT: Final = {
    "publishRate": 5.0,
    "consumeRate": 5.0,
    MAX_RATE: 10.0,
    "publishLatency50pct": 10.0,
    "publishLatency99pct": 15.0,
    "publishLatency999pct": 25.0,
    "endToEndLatency50pct": 10.0,
    "endToEndLatency99pct": 15.0,
    "endToEndLatency999pct": 25.0,
    "publishDelayLatency99pct": 25.0,
}


# --------------------------------------------------------------------------
# Thresholds


def parse_thresholds(texts: Sequence[str], source: str) -> dict[str, float]:
    """`METRIC=PCT` items (each may hold several, comma-separated) to a dict.

    PCT is a number >= 0 with or without a trailing `%`. The last value
    given for a metric wins. ConfigError names `source` (the flag).
    """
    thresholds: dict[str, float] = {}
    for text in texts:
        items = text.split(",")
        if len(items) > 1 and any(not item.strip() for item in items):
            raise ConfigError(
                source,
                None,
                text,
                "an empty item between commas (a comma too many, such as a "
                "trailing one); expected METRIC=PCT items separated by single "
                "commas, e.g. publishRate=5,consumeRate=5",
            )
        for item in items:
            name, equals, pct_text = item.strip().partition("=")
            name = name.strip()
            if not equals or not name:
                raise ConfigError(
                    source,
                    None,
                    item,
                    "expected METRIC=PCT, e.g. publishLatency99pct=10%",
                )
            if name not in ALL_METRICS:
                close = difflib.get_close_matches(name, ALL_METRICS, n=1, cutoff=0.6)
                hint = f"did you mean {close[0]}? " if close else ""
                raise ConfigError(
                    source,
                    None,
                    name,
                    f"unknown metric; {hint}expected one of " + ", ".join(ALL_METRICS),
                )
            thresholds[name] = _percentage(source, name, pct_text)
    return thresholds


def _percentage(source: str, name: str, text: str) -> float:
    number = text.strip().removesuffix("%").strip()
    try:
        pct = float(number)
    except ValueError:
        pct = math.nan
    if not math.isfinite(pct) or pct < 0:
        raise ConfigError(
            source, name, text, "expected a percentage >= 0, e.g. 10% or 2.5"
        )
    return pct


# --------------------------------------------------------------------------
# Same workload on every file

_SHAPE: Final = (
    ("workload", "workload"),
    ("messageSize", "message_size_bytes"),
    ("topics", "topics"),
    ("partitions", "partitions"),
    ("producersPerTopic", "producers_per_topic"),
    ("consumersPerTopic", "consumers_per_topic"),
)


def check_same_workload(runs: Sequence[ResultRun]) -> None:
    """Refuse files whose workloads differ, naming the first that does.

    Compared are OMB's own keys (workload name, message size, topics,
    partitions, producers and consumers per topic) and, where both files
    have a sidecar, the workload's `producerRate`. Durations and drivers
    may differ.
    """
    first = runs[0]
    for run in runs[1:]:
        for key, attribute in _SHAPE:
            expected = getattr(first.result, attribute)
            if getattr(run.result, attribute) != expected:
                _mismatch(run, key, getattr(run.result, attribute), first, expected)
        mine, theirs = _producer_rate(run), _producer_rate(first)
        if mine is not None and theirs is not None and mine != theirs:
            _mismatch(run, "workload.producerRate", mine, first, theirs)


def _producer_rate(run: ResultRun) -> object:
    workload = (run.sidecar or {}).get("workload")
    return workload.get("producerRate") if isinstance(workload, Mapping) else None


def _mismatch(
    run: ResultRun, key: str, value: object, first: ResultRun, expected: object
) -> None:
    raise ConfigError(
        str(run.path),
        key,
        value,
        f"every file compared must come from the same workload; "
        f"{first.path} has {expected!r}",
    )


# --------------------------------------------------------------------------
# The comparison


@dataclass(frozen=True, slots=True)
class SideFigures:
    """One metric on one side: each run's value, their median, the spread."""

    runs: list[float | None]
    periods: list[float]

    @property
    def value(self) -> float | None:
        if not self.runs or any(v is None for v in self.runs):
            return None
        return statistics.median(v for v in self.runs if v is not None)

    @property
    def spread(self) -> tuple[float, float] | None:
        """25th and 75th percentile of the periods; None without periods."""
        finite = [v for v in self.periods if math.isfinite(v)]
        if len(finite) < 2:
            return (finite[0], finite[0]) if finite else None
        low, _, high = statistics.quantiles(finite, n=4, method="inclusive")
        if not (math.isfinite(low) and math.isfinite(high)):
            # The interpolation overflows near the largest float (as a sum
            # does, see `mean`); on values scaled down it does not.
            scale = max(map(abs, finite))
            scaled = [v / scale for v in finite]
            low, _, high = statistics.quantiles(scaled, n=4, method="inclusive")
            low, high = low * scale, high * scale
        return low, high


@dataclass(frozen=True, slots=True)
class MetricRow:
    spec: MetricSpec
    threshold_pct: float
    baseline: SideFigures
    candidate: SideFigures

    @property
    def change_pct(self) -> float | None:
        """Candidate against baseline in percent; +-inf from a baseline of 0."""
        base, cand = self.baseline.value, self.candidate.value
        if base is None or cand is None:
            return None
        if base == 0:
            return 0.0 if cand == 0 else math.copysign(math.inf, cand)
        return (cand - base) / abs(base) * 100.0

    @property
    def verdict(self) -> str:
        change = self.change_pct
        cand = self.candidate.value
        if self.baseline.value is not None and cand is None:
            return MISSING
        if change is None or cand is None:
            return NOT_AVAILABLE
        # Equal counts as within, also when float rounding puts a 10 % step
        # at 10.000000000000009 %.
        if abs(change) <= self.threshold_pct + _PCT_TOLERANCE:
            return OK
        went_up = change > 0
        worse = went_up != self.spec.bigger_is_better
        spread = self.baseline.spread
        if spread is not None:
            low, high = spread
            outside = cand > high if went_up else cand < low
            if not outside:
                return NOISE
        return REGRESSED if worse else IMPROVED


@dataclass(frozen=True, slots=True)
class Comparison:
    baseline: list[ResultRun]
    candidate: list[ResultRun]
    rows: list[MetricRow]

    @property
    def workload(self) -> str:
        return self.baseline[0].result.workload

    @property
    def regressed(self) -> list[str]:
        return [row.spec.name for row in self.rows if row.verdict == REGRESSED]

    @property
    def missing(self) -> list[str]:
        """Metrics the baseline has and the candidate lacks."""
        return [row.spec.name for row in self.rows if row.verdict == MISSING]

    @property
    def failed(self) -> bool:
        """Whether the gate fails: a metric regressed or went missing."""
        return bool(self.regressed or self.missing)


def compare_runs(
    baseline: Sequence[ResultRun],
    candidate: Sequence[ResultRun],
    thresholds_pct: Mapping[str, float],
) -> Comparison:
    """Compare the headline metrics plus any other metric given a threshold.

    `thresholds_pct` overrides the defaults. The max sustainable rate is
    left out when neither side has it (fixed-rate runs, OMB's own files).
    """
    merged = {**DEFAULT_THRESHOLDS_PCT, **thresholds_pct}
    rows = []
    for name, threshold_pct in merged.items():
        spec = ALL_METRICS[name]
        row = MetricRow(
            spec,
            threshold_pct,
            _figures(spec, baseline),
            _figures(spec, candidate),
        )
        absent = all(v is None for v in row.baseline.runs + row.candidate.runs)
        if name == MAX_RATE and absent:
            continue
        rows.append(row)
    return Comparison(list(baseline), list(candidate), rows)


def _figures(spec: MetricSpec, runs: Sequence[ResultRun]) -> SideFigures:
    periods: list[float] = []
    for run in runs:
        periods += spec.periods(run)
    return SideFigures([spec.value(run) for run in runs], periods)


# --------------------------------------------------------------------------
# Output


def _number(value: float | None) -> str:
    if value is None:
        return "n/a"
    if 100 <= abs(value) < 1e15:
        return f"{value:,.0f}"
    return f"{value:.3g}"  # and beyond any real figure: 1e+20, not 21 digits


def _with_unit(value: float | None, unit: str) -> str:
    return "n/a" if value is None else f"{_number(value)} {unit}"


def _change(pct: float | None) -> str:
    if pct is None:
        return "n/a"
    if math.isinf(pct):
        return "+inf %" if pct > 0 else "-inf %"
    return f"{pct:+.1f} %"


def markdown_table(comparison: Comparison) -> str:
    """A heading, the runs per side, the rule, the table and a verdict line."""
    workload = comparison.workload or "(no workload name)"
    lines = [
        f"### bench compare: {workload}",
        "",
        f"Baseline: {_runs(comparison.baseline)}. "
        f"Candidate: {_runs(comparison.candidate)}. "
        f"Values are medians over runs; {RULE}.",
        "",
        "| metric | baseline | candidate | change | threshold | verdict |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in comparison.rows:
        unit = row.spec.unit
        lines.append(
            f"| {row.spec.name} | {_with_unit(row.baseline.value, unit)} "
            f"| {_with_unit(row.candidate.value, unit)} "
            f"| {_change(row.change_pct)} | {row.threshold_pct:g} % "
            f"| {row.verdict} |"
        )
    lines.append("")
    regressed, missing = comparison.regressed, comparison.missing
    if regressed:
        lines.append(f"**Regressed**: {', '.join(regressed)}.")
    if missing:
        lines.append(f"**Missing from the candidate**: {', '.join(missing)}.")
    if not comparison.failed:
        lines.append("No regression past its threshold.")
    return "\n".join(lines) + "\n"


def _runs(runs: Sequence[ResultRun]) -> str:
    return f"{len(runs)} run" + ("" if len(runs) == 1 else "s")


def _json_number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def to_json(comparison: Comparison) -> dict[str, Any]:
    """Everything the table shows, plus each run's value and the spreads."""

    def side(runs: Sequence[ResultRun]) -> dict[str, Any]:
        return {
            "files": [str(run.path) for run in runs],
            "labels": [run.label for run in runs],
        }

    def spread(figures: SideFigures) -> list[float] | None:
        bounds = figures.spread
        return None if bounds is None else list(bounds)

    metrics = []
    for row in comparison.rows:
        metrics.append(
            {
                "metric": row.spec.name,
                "label": row.spec.label,
                "unit": row.spec.unit,
                "better": "higher" if row.spec.bigger_is_better else "lower",
                "baseline": _json_number(row.baseline.value),
                "candidate": _json_number(row.candidate.value),
                "changePct": _json_number(row.change_pct),
                "thresholdPct": row.threshold_pct,
                "verdict": row.verdict,
                "baselineRuns": row.baseline.runs,
                "candidateRuns": row.candidate.runs,
                "baselinePeriodQuartiles": spread(row.baseline),
                "candidatePeriodQuartiles": spread(row.candidate),
            }
        )
    return {
        "workload": comparison.workload,
        "rule": RULE,
        "baseline": side(comparison.baseline),
        "candidate": side(comparison.candidate),
        "regressed": comparison.regressed,
        "missing": comparison.missing,
        "metrics": metrics,
    }


def github_benchmark_entries(
    comparison: Comparison,
) -> dict[str, list[dict[str, Any]]]:
    """github-action-benchmark's custom entries, by the file they go into.

    One entry per metric with a candidate value: `value` is the candidate's,
    `range` half the width of the candidate's per-period interquartile
    range, `extra` the baseline, the change and the verdict. Names carry the workload so
    one benchmark page can track several workloads.
    """
    files: dict[str, list[dict[str, Any]]] = {
        GITHUB_SMALLER_FILE: [],
        GITHUB_BIGGER_FILE: [],
    }
    prefix = f"{comparison.workload} - " if comparison.workload else ""
    for row in comparison.rows:
        value = row.candidate.value
        if value is None:
            continue
        unit = row.spec.unit
        entry: dict[str, Any] = {
            "name": prefix + row.spec.name,
            "unit": unit,
            "value": value,
        }
        bounds = row.candidate.spread
        if bounds is not None:
            entry["range"] = f"± {_number((bounds[1] - bounds[0]) / 2)}"
        entry["extra"] = (
            f"baseline {_with_unit(row.baseline.value, unit)} "
            f"({_runs(comparison.baseline)}), candidate "
            f"{_runs(comparison.candidate)}, change {_change(row.change_pct)}, "
            f"threshold {row.threshold_pct:g} %, {row.verdict}"
        )
        target = (
            GITHUB_BIGGER_FILE if row.spec.bigger_is_better else GITHUB_SMALLER_FILE
        )
        files[target].append(entry)
    return files


def write_json(path: Path, document: Any, what: str = "comparison") -> None:
    """Write JSON text whole, or raise OutputFileError naming `path`."""
    text = json.dumps(document, indent=2, ensure_ascii=False)
    write_text_safely(path, text + "\n", what=what)
