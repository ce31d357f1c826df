"""`bench compare` through the command line, and the CI workflow that uses it.

Most tests write result files whose numbers are chosen here: every latency
figure is a base value (table `BASE` below) times a factor, its per-period
series the same value times `QUIET` (within 2 %) or `NOISY` (0.6x to 1.3x;
interquartile range 0.75x to 1.2625x).
A change of a factor then moves both the aggregate and the periods. The
last tests run the CI workflow's steps with real `bench run`s.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Bench

from reports.compare import ALL_METRICS, DEFAULT_THRESHOLDS_PCT, max_sustainable_rate
from runner import cli
from runner.result import TestResult, dumps_result, loads_result
from runner.workload import load_workload, parse_duration

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / "examples" / "ci" / "benchmark.yml"

QUIET = (0.98, 1.0, 1.02, 1.0)
NOISY = (0.6, 1.3, 0.8, 1.25)
RATE_PER_S = 2000.0

#: Base value of each latency figure by (family, suffix), in OMB's units.
BASE: dict[str, dict[str, float]] = {
    "publish_latency": {"avg": 0.6, "50pct": 0.5, "99pct": 2.0, "999pct": 5.0},
    "publish_delay_latency": {"avg": 300, "50pct": 200, "99pct": 500, "999pct": 900},
    "end_to_end_latency": {"avg": 0.9, "50pct": 0.8, "99pct": 3.0, "999pct": 6.0},
}
OTHER_SUFFIXES = {"75pct": 1.2, "95pct": 1.5, "9999pct": 8.0, "max": 10.0}


def _result(
    factors: Mapping[str, float] | None = None,
    *,
    periods: Sequence[float] = QUIET,
    noisy: Sequence[str] = (),
    rates: Sequence[float] | None = None,
    workload: str = "compare test",
    topics: int = 1,
) -> TestResult:
    """A result at the base values, `factors[metric]` times where given.

    `noisy` metrics get the NOISY period factors instead of `periods`.
    """
    factors = factors or {}
    result = TestResult(
        workload=workload,
        driver="Redis",
        message_size_bytes=1024,
        topics=topics,
        partitions=4,
        producers_per_topic=1,
        consumers_per_topic=1,
    )
    for item in fields(TestResult):
        if not item.name.startswith("aggregated_") or item.type not in ("float", "int"):
            continue
        series = item.name.removeprefix("aggregated_")
        family, _, suffix = series.rpartition("_")
        base = BASE[family].get(suffix, OTHER_SUFFIXES.get(suffix, 1.0))
        if family == "publish_delay_latency" and suffix in OTHER_SUFFIXES:
            base *= 1000
        name = _camel(series)
        value = base * factors.get(name, 1.0)
        shape = NOISY if name in noisy else periods
        whole = item.type == "int"
        setattr(result, item.name, round(value) if whole else value)
        setattr(
            result,
            series,
            [round(value * f) if whole else value * f for f in shape],
        )
    publish = rates or [RATE_PER_S * f for f in (0.999, 1.0, 1.001, 1.0)]
    result.publish_rate = [r * factors.get("publishRate", 1.0) for r in publish]
    result.consume_rate = [r * factors.get("consumeRate", 1.0) for r in publish]
    result.publish_error_rate = [0.0] * len(publish)
    result.backlog = [0] * len(publish)
    return result


def _camel(series: str) -> str:
    first, *rest = series.split("_")
    name = first + "".join(part[:1].upper() + part[1:] for part in rest)
    assert name in ALL_METRICS, name
    return name


def _write(
    path: Path, result: TestResult, sidecar: dict[str, Any] | None = None
) -> Path:
    path.write_text(dumps_result(result))
    if sidecar is not None:
        Path(f"{path}.sidecar").write_text(json.dumps(sidecar))
    return path


def _sidecar(producer_rate: float = RATE_PER_S, **extra: Any) -> dict[str, Any]:
    return {
        "schemaVersion": 1,
        "workload": {
            "name": "compare test",
            "producerRate": producer_rate,
            "warmupDurationSeconds": 10.0,
            "testDurationSeconds": 20.0,
        },
        "chosenRates": [],
        "startedAt": "2026-01-02T03:04:05+00:00",
        **extra,
    }


def _row(table: str, metric: str) -> list[str]:
    """The cells of the markdown table's row for `metric`."""
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells[0] == metric:
            return cells
    raise AssertionError(f"no row for {metric} in:\n{table}")


def _pair(
    tmp_path: Path, base: TestResult, cand: TestResult, sidecars: bool = True
) -> tuple[Path, Path]:
    extra = _sidecar() if sidecars else None
    return (
        _write(tmp_path / "base.json", base, extra),
        _write(tmp_path / "cand.json", cand, extra),
    )


# --------------------------------------------------------------------------
# Thresholds and directions


@pytest.mark.parametrize(
    ("threshold", "status", "verdict"), [("10%", 1, "regressed"), ("30", 0, "ok")]
)
def test_latency_rise_of_20_percent(
    bench: Bench, tmp_path: Path, threshold: str, status: int, verdict: str
) -> None:
    base, cand = _pair(tmp_path, _result(), _result({"publishLatency99pct": 1.2}))
    code, out, err = bench(
        "compare", base, "--candidate", cand, "--threshold",
        f"publishLatency99pct={threshold}",
    )  # fmt: skip
    assert (code, err) == (status, "")
    assert _row(out, "publishLatency99pct") == [
        "publishLatency99pct", "2 ms", "2.4 ms", "+20.0 %",
        f"{float(threshold.rstrip('%')):g} %", verdict,
    ]  # fmt: skip
    # Everything else is unchanged.
    assert _row(out, "endToEndLatency99pct")[3:] == ["+0.0 %", "15 %", "ok"]
    if status:
        assert "**Regressed**: publishLatency99pct." in out
    else:
        assert "No regression past its threshold." in out


@pytest.mark.parametrize(
    ("factor", "verdict", "change"),
    [(1.1, "ok", "+10.0 %"), (1.101, "regressed", "+10.1 %"), (0.9, "ok", "-10.0 %")],
)
def test_change_equal_to_the_threshold_is_within(
    bench: Bench, tmp_path: Path, factor: float, verdict: str, change: str
) -> None:
    # 0.5 ms to 0.55 ms is 10.000000000000009 % in floating point.
    base, cand = _pair(tmp_path, _result(), _result({"publishLatency50pct": factor}))
    code, out, _ = bench("compare", base, "--candidate", cand)
    assert code == (1 if verdict == "regressed" else 0)
    assert _row(out, "publishLatency50pct")[3:] == [change, "10 %", verdict]


@pytest.mark.parametrize(
    ("factor", "status", "verdict", "change"),
    [(0.9, 1, "regressed", "-10.0 %"), (1.1, 0, "improved", "+10.0 %")],
)
def test_rate_drop_regresses_and_rise_improves(
    bench: Bench, tmp_path: Path, factor: float, status: int, verdict: str, change: str
) -> None:
    base, cand = _pair(tmp_path, _result(), _result({"consumeRate": factor}))
    code, out, _ = bench("compare", base, "--candidate", cand)
    assert code == status
    assert _row(out, "consumeRate")[3:] == [change, "5 %", verdict]
    assert _row(out, "publishRate")[5] == "ok"


def test_latency_fall_is_an_improvement(bench: Bench, tmp_path: Path) -> None:
    base, cand = _pair(tmp_path, _result(), _result({"endToEndLatency50pct": 0.5}))
    code, out, _ = bench("compare", base, "--candidate", cand)
    assert code == 0
    assert _row(out, "endToEndLatency50pct")[3:] == ["-50.0 %", "10 %", "improved"]


@pytest.mark.parametrize(
    ("noisy", "verdict", "status"), [(True, "noise", 0), (False, "regressed", 1)]
)
def test_noisy_baseline_makes_a_change_noise(
    bench: Bench, tmp_path: Path, noisy: bool, verdict: str, status: int
) -> None:
    # Noisy baseline periods of p99 have quartiles 1.5 and 2.525 ms: the
    # candidate's 2.4 ms is 20 % up, past 10 %, but inside that range. Quiet
    # ones stay within 1.96 to 2.04 ms, and the same change is real.
    spread = ["publishLatency99pct"] if noisy else []
    base, cand = _pair(
        tmp_path,
        _result(noisy=spread),
        _result({"publishLatency99pct": 1.2}, noisy=spread),
    )
    code, out, _ = bench(
        "compare", base, "--candidate", cand, "--threshold", "publishLatency99pct=10"
    )
    assert code == status
    assert _row(out, "publishLatency99pct")[3:] == ["+20.0 %", "10 %", verdict]


def test_quiet_baseline_same_change_regresses(bench: Bench, tmp_path: Path) -> None:
    # Only the candidate is noisy: the rule looks at the baseline's spread.
    base, cand = _pair(
        tmp_path,
        _result(),
        _result({"publishLatency99pct": 1.2}, noisy=["publishLatency99pct"]),
    )
    code, out, _ = bench(
        "compare", base, "--candidate", cand, "--threshold", "publishLatency99pct=10"
    )
    assert code == 1
    assert _row(out, "publishLatency99pct")[5] == "regressed"


def test_change_outside_a_noisy_spread_still_counts(
    bench: Bench, tmp_path: Path
) -> None:
    # 1.5x is above the noisy baseline's highest period (1.3x).
    base, cand = _pair(
        tmp_path,
        _result(noisy=["endToEndLatency999pct"]),
        _result({"endToEndLatency999pct": 1.5}),
    )
    code, out, _ = bench("compare", base, "--candidate", cand)
    assert code == 1
    assert _row(out, "endToEndLatency999pct")[3:] == ["+50.0 %", "25 %", "regressed"]


def test_one_spiky_period_does_not_hide_a_regression(
    bench: Bench, tmp_path: Path
) -> None:
    # One baseline period at 3x (a stall on a shared runner) reaches past the
    # candidate's 1.5x, but the quartiles stay near 1x: still a regression.
    base, cand = _pair(
        tmp_path,
        _result(periods=(1.0, 0.98, 1.02, 1.0, 0.99, 3.0)),
        _result({"publishLatency99pct": 1.5}),
    )
    code, out, _ = bench("compare", base, "--candidate", cand)
    assert code == 1
    assert _row(out, "publishLatency99pct")[3:] == ["+50.0 %", "15 %", "regressed"]


def test_other_aggregated_metric_gets_a_row(bench: Bench, tmp_path: Path) -> None:
    base, cand = _pair(tmp_path, _result(), _result({"publishDelayLatencyMax": 2.0}))
    code, out, _ = bench("compare", base, "--candidate", cand)
    assert code == 0 and "publishDelayLatencyMax" not in out
    code, out, _ = bench(
        "compare", base, "--candidate", cand,
        "--threshold", "publishDelayLatencyMax=50%,publishRate=1%",
    )  # fmt: skip
    assert code == 1
    assert _row(out, "publishDelayLatencyMax") == [
        "publishDelayLatencyMax", "10,000 us", "20,000 us", "+100.0 %", "50 %",
        "regressed",
    ]  # fmt: skip
    assert _row(out, "publishRate")[4] == "1 %"


def test_table_lists_the_headline_metrics_in_order(
    bench: Bench, tmp_path: Path
) -> None:
    base, cand = _pair(tmp_path, _result(), _result())
    code, out, _ = bench("compare", base, "--candidate", cand)
    assert code == 0
    metrics = [
        line.split("|")[1].strip()
        for line in out.splitlines()
        if line.startswith("| ") and line[2:5] not in ("met", "---")
    ]
    # No max-rate row: these are fixed-rate runs.
    assert metrics == [m for m in DEFAULT_THRESHOLDS_PCT if m != "maxSustainableRate"]


# --------------------------------------------------------------------------
# Several runs per side


def test_several_runs_per_side_use_medians(bench: Bench, tmp_path: Path) -> None:
    base = [
        _write(tmp_path / f"base-{i}.json", _result({"publishLatency99pct": f}))
        for i, f in enumerate((1.0, 1.1, 4.5))
    ]
    cand = [
        _write(tmp_path / f"cand-{i}.json", _result({"publishLatency99pct": f}))
        for i, f in enumerate((1.05, 1.0, 1.15))
    ]
    report = tmp_path / "compare.json"
    code, out, _ = bench("compare", *base, "--candidate", *cand, "--json", report)
    document = json.loads(report.read_text())
    row = next(m for m in document["metrics"] if m["metric"] == "publishLatency99pct")
    assert row["baselineRuns"] == pytest.approx([2.0, 2.2, 9.0])
    assert row["baseline"] == pytest.approx(2.2)  # the mean would be 4.4
    assert row["candidate"] == pytest.approx(2.1)
    assert row["changePct"] == pytest.approx((2.1 - 2.2) / 2.2 * 100)
    # Quartiles of all three baseline runs' periods, pooled.
    pooled = [value * q for value in (2.0, 2.2, 9.0) for q in QUIET]
    low, _, high = statistics.quantiles(pooled, n=4, method="inclusive")
    assert row["baselinePeriodQuartiles"] == pytest.approx([low, high])
    assert row["verdict"] == "ok" and code == 0
    assert "Baseline: 3 runs. Candidate: 3 runs." in out
    assert document["baseline"]["files"] == [str(p) for p in base]


def test_rate_of_a_run_is_the_mean_of_its_periods(bench: Bench, tmp_path: Path) -> None:
    periods = [1000.0, 1000.0, 4000.0]  # mean 2000, median 1000
    base, cand = _pair(tmp_path, _result(rates=periods), _result(rates=periods))
    report = tmp_path / "compare.json"
    code, _, _ = bench("compare", base, "--candidate", cand, "--json", report)
    assert code == 0
    rows = {m["metric"]: m for m in json.loads(report.read_text())["metrics"]}
    assert rows["publishRate"]["baseline"] == statistics.fmean(periods)
    assert rows["consumeRate"]["candidate"] == statistics.fmean(periods)
    # Inclusive quartiles of 1000, 1000, 4000.
    assert rows["publishRate"]["baselinePeriodQuartiles"] == [1000.0, 2500.0]


def _refuse(constant: str) -> None:
    raise AssertionError(f"{constant} is not JSON")


def test_rates_near_the_largest_float_stay_a_comparison(
    bench: Bench, tmp_path: Path
) -> None:
    # Their sum overflows a float; the mean of each side must not, and the
    # table shows them in exponent form, not as 309 digits.
    huge = [1e308, 1e308]
    base, cand = _pair(tmp_path, _result(rates=huge), _result())
    report = tmp_path / "compare.json"
    code, out, _ = bench("compare", base, "--candidate", cand, "--json", report)
    assert code == 1
    assert _row(out, "publishRate")[1:4] == ["1e+308 msg/s", "2,000 msg/s", "-100.0 %"]
    # Strict JSON: no Infinity where the quartiles of such periods are.
    document = json.loads(report.read_text(), parse_constant=_refuse)
    rows = {m["metric"]: m for m in document["metrics"]}
    assert rows["publishRate"]["baselinePeriodQuartiles"] == [1e308, 1e308]
    code, out, _ = bench("report", base, cand, "-o", tmp_path / "report")
    assert code == 0
    assert "1e+308" in (tmp_path / "report" / "index.html").read_text()


def test_output_files_are_readable_by_others(bench: Bench, tmp_path: Path) -> None:
    # Written through a private temporary file, they must still end with
    # the mode any new file gets (here 0644), not 0600.
    base, cand = _pair(tmp_path, _result(), _result())
    previous = os.umask(0o022)
    try:
        code, _, _ = bench(
            "compare", base, "--candidate", cand, "--json", tmp_path / "c.json"
        )
    finally:
        os.umask(previous)
    assert code == 0
    assert (tmp_path / "c.json").stat().st_mode & 0o777 == 0o644


# --------------------------------------------------------------------------
# Output files


def test_json_and_github_benchmark_files(bench: Bench, tmp_path: Path) -> None:
    base, cand = _pair(
        tmp_path, _result(), _result({"endToEndLatency99pct": 1.3, "publishRate": 0.5})
    )
    report = tmp_path / "out" / "compare.json"
    report.parent.mkdir()
    github = tmp_path / "gh" / "data"  # created, parents too
    code, out, _ = bench(
        "compare", base, "--candidate", cand, "--json", report,
        "--github-benchmark", github,
    )  # fmt: skip
    assert code == 1
    document = json.loads(report.read_text())
    assert document["workload"] == "compare test"
    assert document["candidate"]["files"] == [str(cand)]
    assert document["candidate"]["labels"] == ["Redis @ 2026-01-02 03:04:05"]
    assert sorted(document["regressed"]) == ["endToEndLatency99pct", "publishRate"]
    rows = {m["metric"]: m for m in document["metrics"]}
    e2e = rows["endToEndLatency99pct"]
    assert (e2e["unit"], e2e["better"], e2e["thresholdPct"]) == ("ms", "lower", 15.0)
    assert (e2e["baseline"], e2e["candidate"]) == pytest.approx((3.0, 3.9))
    assert e2e["changePct"] == pytest.approx(30.0)
    assert rows["publishRate"]["better"] == "higher"
    assert rows["publishRate"]["candidate"] == pytest.approx(RATE_PER_S / 2)
    # The table says the same.
    assert _row(out, "endToEndLatency99pct")[3:] == ["+30.0 %", "15 %", "regressed"]

    smaller = json.loads((github / "smaller-is-better.json").read_text())
    bigger = json.loads((github / "bigger-is-better.json").read_text())
    by_name = {entry["name"]: entry for entry in smaller + bigger}
    latencies = [m for m, row in rows.items() if row["better"] == "lower"]
    assert [e["name"] for e in smaller] == [f"compare test - {m}" for m in latencies]
    assert [e["name"] for e in bigger] == [
        "compare test - publishRate",
        "compare test - consumeRate",
    ]
    entry = by_name["compare test - endToEndLatency99pct"]
    assert entry["unit"] == "ms"
    assert entry["value"] == pytest.approx(3.9)
    # Half the candidate's periods' interquartile range: QUIET's quartiles
    # are 0.995 and 1.005, so 3.9 * 0.01 / 2.
    assert entry["range"] == f"± {3.9 * 0.005:.3g}"
    assert "change +30.0 %" in entry["extra"] and "regressed" in entry["extra"]
    assert by_name["compare test - publishRate"]["unit"] == "msg/s"
    for item in smaller + bigger:
        assert set(item) <= {"name", "unit", "value", "range", "extra"}
        assert isinstance(item["value"], float)


# --------------------------------------------------------------------------
# Max sustainable rate, and results from OMB's Java tool


def _max_rate_sidecar(scale: float) -> dict[str, Any]:
    # Warm-up ends at 10 s: 15000 (chosen at 9 s) was in force then.
    chosen = [(3, 10000), (6, 20000), (9, 15000), (12, 16000), (15, 15500)]
    return _sidecar(
        0.0,
        chosenRates=[{"atSeconds": at, "rate": r * scale} for at, r in chosen],
    )


def test_max_sustainable_rate_from_the_sidecar() -> None:
    held = max_sustainable_rate(_max_rate_sidecar(1.0))
    assert held == [15000, 16000, 15500]
    assert max_sustainable_rate(_sidecar()) is None  # fixed rate
    assert max_sustainable_rate(None) is None
    # Where the sidecar says when measuring began (here later than the
    # warm-up's 10 s), the rates chosen before it do not count.
    late = _max_rate_sidecar(1.0) | {"measuredFromSeconds": 13.0}
    assert max_sustainable_rate(late) == [16000, 15500]


def test_max_sustainable_rate_regresses(bench: Bench, tmp_path: Path) -> None:
    base = _write(tmp_path / "base.json", _result(), _max_rate_sidecar(1.0))
    cand = _write(tmp_path / "cand.json", _result(), _max_rate_sidecar(0.8))
    code, out, _ = bench("compare", base, "--candidate", cand)
    assert code == 1
    assert _row(out, "maxSustainableRate") == [
        "maxSustainableRate", "15,500 msg/s", "12,400 msg/s", "-20.0 %", "10 %",
        "regressed",
    ]  # fmt: skip


def test_java_results_without_sidecar(bench: Bench, tmp_path: Path) -> None:
    base, cand = _pair(
        tmp_path, _result(), _result({"publishLatency50pct": 1.5}), sidecars=False
    )
    report = tmp_path / "compare.json"
    code, out, _ = bench("compare", base, "--candidate", cand, "--json", report)
    assert code == 1
    assert _row(out, "publishLatency50pct")[3:] == ["+50.0 %", "10 %", "regressed"]
    assert "maxSustainableRate" not in out
    labels = json.loads(report.read_text())["baseline"]["labels"]
    assert labels == ["Redis (base.json)"]


def test_max_rate_known_on_one_side_only(bench: Bench, tmp_path: Path) -> None:
    # A candidate that no longer tells its max rate must not pass the gate.
    known = _write(tmp_path / "known.json", _result(), _max_rate_sidecar(1.0))
    unknown = _write(tmp_path / "unknown.json", _result())  # as OMB's tool writes it
    code, out, _ = bench("compare", known, "--candidate", unknown)
    assert code == 1
    assert _row(out, "maxSustainableRate")[1:] == [
        "15,500 msg/s", "n/a", "n/a", "10 %", "missing",
    ]  # fmt: skip
    assert "**Missing from the candidate**: maxSustainableRate." in out
    # The other way round there is nothing to hold the candidate to.
    code, out, _ = bench("compare", unknown, "--candidate", known)
    assert code == 0
    assert _row(out, "maxSustainableRate")[1:] == [
        "n/a", "15,500 msg/s", "n/a", "10 %", "n/a",
    ]  # fmt: skip


def test_java_number_text_is_read(bench: Bench, tmp_path: Path) -> None:
    # OMB's Java tool writes large doubles as 1.0E7 and NaN as a string.
    text = dumps_result(_result(rates=[1.0e7, 1.0e7]))
    assert '"publishRate" : [ 1.0E7, 1.0E7 ]' in text
    key = '"aggregatedPublishLatencyMax" : '
    text = re.sub(key + "[^,]+", key + '"NaN"', text)
    base = tmp_path / "java.json"
    base.write_text(text)
    code, out, _ = bench(
        "compare", base, "--candidate", base, "--threshold", "publishLatencyMax=1"
    )
    assert code == 0
    assert _row(out, "publishRate")[1] == "10,000,000 msg/s"
    assert _row(out, "publishLatencyMax")[5] == "n/a"


# --------------------------------------------------------------------------
# Keys a file does not have


def _document(result: TestResult, *dropped: str, **changed: Any) -> dict[str, Any]:
    """The result's JSON object without the `dropped` keys, `changed` set."""
    document: dict[str, Any] = json.loads(dumps_result(result))
    for key in dropped:
        del document[key]
    document.update(changed)
    return document


def _write_document(path: Path, document: Mapping[str, Any]) -> Path:
    path.write_text(json.dumps(document, indent=2))
    return path


PUBLISH_DELAY_KEYS = [
    key
    for key in json.loads(dumps_result(TestResult()))
    if key.startswith(("publishDelay", "aggregatedPublishDelay"))
]


def test_keys_absent_on_both_sides_are_no_value(bench: Bench, tmp_path: Path) -> None:
    # OMB's Java tool before publish delay existed wrote none of its keys:
    # that is no figure, not a delay of 0 us that stayed the same.
    base = _write_document(
        tmp_path / "base.json", _document(_result(), *PUBLISH_DELAY_KEYS)
    )
    cand = _write_document(
        tmp_path / "cand.json", _document(_result(), *PUBLISH_DELAY_KEYS)
    )
    code, out, _ = bench("compare", base, "--candidate", cand)
    assert code == 0
    assert _row(out, "publishDelayLatency99pct")[1:] == [
        "n/a", "n/a", "n/a", "25 %", "n/a",
    ]  # fmt: skip
    assert _row(out, "publishLatency99pct")[1:3] == ["2 ms", "2 ms"]


@pytest.mark.parametrize("absent", ["key", "NaN"])
def test_a_figure_the_candidate_lacks_fails(
    bench: Bench, tmp_path: Path, absent: str
) -> None:
    base = _write(tmp_path / "base.json", _result())
    key = "aggregatedEndToEndLatency99pct"
    lacking = (
        _document(_result(), key)
        if absent == "key"
        else _document(_result(), **{key: "NaN"})
    )
    cand = _write_document(tmp_path / "cand.json", lacking)
    report = tmp_path / "compare.json"
    code, out, _ = bench("compare", base, "--candidate", cand, "--json", report)
    assert code == 1
    assert _row(out, "endToEndLatency99pct")[1:] == [
        "3 ms", "n/a", "n/a", "15 %", "missing",
    ]  # fmt: skip
    assert "**Missing from the candidate**: endToEndLatency99pct." in out
    assert "No regression" not in out
    document = json.loads(report.read_text())
    assert (document["regressed"], document["missing"]) == (
        [],
        ["endToEndLatency99pct"],
    )
    # The baseline lacking it is nothing to hold the candidate to.
    code, out, _ = bench("compare", cand, "--candidate", base)
    assert code == 0
    assert _row(out, "endToEndLatency99pct")[5] == "n/a"


def test_same_file_on_both_sides_warns(
    bench: Bench, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base = _write(tmp_path / "base.json", _result())
    other = _write(tmp_path / "other.json", _result())
    caplog.set_level(logging.WARNING)
    assert bench("compare", base, "--candidate", other)[0] == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    link = tmp_path / "link.json"
    link.symlink_to(base)
    assert bench("compare", base, other, "--candidate", link)[0] == 0
    (warning,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warning.getMessage() == (
        f"{link} is both a baseline and a candidate file: that run is compared "
        "with itself"
    )


# --------------------------------------------------------------------------
# Bad input: one line, exit 2, nothing written


def _bad(bench: Bench, tmp_path: Path, *argv: str | Path) -> str:
    report = tmp_path / "never.json"
    github = tmp_path / "never-dir"
    code, out, err = bench(*argv, "--json", report, "--github-benchmark", github)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("bench compare: error: ")
    assert not report.exists() and not github.exists()
    return err


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    return _pair(tmp_path, _result(), _result())


def test_unknown_metric_suggests_the_closest(
    bench: Bench, tmp_path: Path, files: tuple[Path, Path]
) -> None:
    base, cand = files
    err = _bad(
        bench, tmp_path, "compare", base, "--candidate", cand,
        "--threshold", "publishLatency99=10%",
    )  # fmt: skip
    assert err.startswith(
        "bench compare: error: --threshold: 'publishLatency99' is not allowed; "
        "unknown metric; did you mean publishLatency99pct? expected one of "
        "publishRate, consumeRate, maxSustainableRate, publishLatencyAvg, "
    )
    assert err.rstrip().endswith("endToEndLatency9999pct, endToEndLatencyMax")


@pytest.mark.parametrize("pct", ["ten%", "-5%", "nan", "inf", ""])
def test_bad_percentage(
    bench: Bench, tmp_path: Path, files: tuple[Path, Path], pct: str
) -> None:
    base, cand = files
    err = _bad(
        bench, tmp_path, "compare", base, "--candidate", cand,
        "--threshold", f"consumeRate={pct}",
    )  # fmt: skip
    assert err == (
        f"bench compare: error: --threshold: consumeRate: {pct!r} is not allowed; "
        "expected a percentage >= 0, e.g. 10% or 2.5\n"
    )


def test_threshold_without_equals(
    bench: Bench, tmp_path: Path, files: tuple[Path, Path]
) -> None:
    base, cand = files
    err = _bad(
        bench, tmp_path, "compare", base, "--candidate", cand,
        "--threshold", "publishRate:5",
    )  # fmt: skip
    assert "'publishRate:5' is not allowed; expected METRIC=PCT" in err


@pytest.mark.parametrize(
    ("change", "key", "value", "expected"),
    [
        ({"topics": 2}, "topics", "2", "1"),
        ({"workload": "other"}, "workload", "'other'", "'compare test'"),
    ],
)
def test_mismatched_workloads(
    bench: Bench,
    tmp_path: Path,
    files: tuple[Path, Path],
    change: dict[str, Any],
    key: str,
    value: str,
    expected: str,
) -> None:
    base, _ = files
    other = _write(tmp_path / "other.json", _result(**change))
    err = _bad(bench, tmp_path, "compare", base, "--candidate", other)
    assert err == (
        f"bench compare: error: {other}: {key}: {value} is not allowed; every file "
        f"compared must come from the same workload; {base} has {expected}\n"
    )


def test_mismatched_producer_rate_in_sidecars(
    bench: Bench, tmp_path: Path, files: tuple[Path, Path]
) -> None:
    base, _ = files
    other = _write(tmp_path / "other.json", _result(), _max_rate_sidecar(1.0))
    err = _bad(bench, tmp_path, "compare", base, "--candidate", other)
    assert f"{other}: workload.producerRate: 0.0 is not allowed;" in err


def test_missing_and_malformed_files(
    bench: Bench, tmp_path: Path, files: tuple[Path, Path]
) -> None:
    base, cand = files
    missing = tmp_path / "missing.json"
    err = _bad(bench, tmp_path, "compare", base, "--candidate", cand, missing)
    assert err.startswith(f"bench compare: error: {missing}: 'missing.json' ")
    assert "no such file" in err
    broken = tmp_path / "broken.json"
    broken.write_text('{"workload": ')
    err = _bad(bench, tmp_path, "compare", broken, "--candidate", cand)
    assert err.startswith(f"bench compare: error: {broken}: ")
    assert "not valid JSON" in err


def test_files_that_are_no_results(bench: Bench, tmp_path: Path) -> None:
    empty = _write_document(tmp_path / "empty.json", {})
    err = _bad(bench, tmp_path, "compare", empty, "--candidate", empty)
    assert err == (
        f"bench compare: error: {empty}: 'workload, driver, publishRate, "
        "consumeRate' is not allowed; missing keys; expected an OMB result file "
        "(the JSON `bench run` or OMB writes)\n"
    )
    base = _write(tmp_path / "base.json", _result(), _sidecar())
    sidecar = Path(f"{base}.sidecar")
    err = _bad(bench, tmp_path, "compare", base, "--candidate", sidecar)
    assert err.startswith(f"bench compare: error: {sidecar}: 'driver, publishRate,")
    assert err.endswith("(this is a sidecar; give the result file beside it)\n")


@pytest.mark.parametrize(
    ("key", "value", "shown", "expected"),
    [
        ("publishRate", "fast", "publishRate: 'fast'", "expected a list of numbers"),
        ("topics", "1", "topics: '1'", "expected a whole number"),
        ("consumeRate", {"a": 1}, "consumeRate: {'a': 1}",
         "expected a list of numbers"),
        # A negative p99 made a "+623.3 %" regression out of nonsense.
        ("aggregatedPublishLatency99pct", -5, "aggregatedPublishLatency99pct: -5",
         "expected a number >= 0"),
        ("publishRate", [2000.0, -1.5], "publishRate[1]: -1.5",
         "expected a number >= 0"),
    ],
)  # fmt: skip
def test_values_of_the_wrong_type_or_range(
    bench: Bench,
    tmp_path: Path,
    files: tuple[Path, Path],
    key: str,
    value: Any,
    shown: str,
    expected: str,
) -> None:
    _, cand = files
    bad = _write_document(tmp_path / "a.json", _document(_result(), **{key: value}))
    err = _bad(bench, tmp_path, "compare", bad, "--candidate", cand)
    assert err == f"bench compare: error: {bad}: {shown} is not allowed; {expected}\n"


@pytest.mark.parametrize("text", ["publishRate=5,,", ",publishRate=5", "a=1,,b=2"])
def test_threshold_with_an_empty_item(
    bench: Bench, tmp_path: Path, files: tuple[Path, Path], text: str
) -> None:
    base, cand = files
    err = _bad(
        bench, tmp_path, "compare", base, "--candidate", cand, "--threshold", text
    )
    assert err == (
        f"bench compare: error: --threshold: {text!r} is not allowed; an empty "
        "item between commas (a comma too many, such as a trailing one); expected "
        "METRIC=PCT items separated by single commas, e.g. "
        "publishRate=5,consumeRate=5\n"
    )


@pytest.mark.parametrize(
    ("flag", "expected"),
    [("--json", "a file path"), ("--github-benchmark", "a folder path")],
)
def test_an_empty_output_path_is_refused(
    bench: Bench, tmp_path: Path, files: tuple[Path, Path], flag: str, expected: str
) -> None:
    # Path("") would be the current folder (here, the repository's root).
    base, cand = files
    code, out, err = bench("compare", base, "--candidate", cand, flag, "")
    assert (code, out) == (2, "")
    assert err == (
        f"bench compare: error: {flag}: '' is not allowed; an empty path; "
        f"expected {expected}\n"
    )


def test_an_output_file_that_cannot_be_written(
    bench: Bench, tmp_path: Path, files: tuple[Path, Path]
) -> None:
    # A full device: one line and exit 2, which CI does not read as
    # "regressed" (1); no table, whose verdict would say otherwise.
    base, cand = files
    full = Path("/dev/full")
    code, out, err = bench("compare", base, "--candidate", cand, "--json", full)
    assert (code, out) == (2, "")
    assert err == (
        "bench compare: error: /dev/full: cannot write the comparison "
        "(No space left on device)\n"
    )
    # A later file that fails takes back the earlier ones this call made.
    report = tmp_path / "compare.json"
    code, out, err = bench(
        "compare", base, "--candidate", cand, "--json", report,
        "--github-benchmark", full / "data",
    )  # fmt: skip
    assert (code, out) == (2, "")
    assert err == (
        "bench compare: error: /dev/full/data: cannot write the folder "
        "(Not a directory)\n"
    )
    assert not report.exists()


def test_missing_candidate_flag(
    bench: Bench, files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    base, _ = files
    with pytest.raises(SystemExit) as exit_info:
        bench("compare", base)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err == (
        "bench compare: error: the following arguments are required: --candidate\n"
    )


def test_json_into_a_missing_folder(
    bench: Bench, tmp_path: Path, files: tuple[Path, Path]
) -> None:
    base, cand = files
    target = tmp_path / "no" / "compare.json"
    code, out, err = bench("compare", base, "--candidate", cand, "--json", target)
    assert (code, out) == (2, "")
    assert err == (
        f"bench compare: error: --json: {str(target)!r} is not allowed; its folder "
        f"{str(target.parent)!r} does not exist; expected a file path in an "
        "existing folder\n"
    )


# --------------------------------------------------------------------------
# The CI workflow in examples/ci


def _workflow() -> dict[Any, Any]:
    document = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(document, dict)
    return document


def _step(job: dict[str, Any], needle: str) -> dict[str, Any]:
    steps = [s for s in job["steps"] if needle in s.get("run", "")]
    assert len(steps) == 1, needle
    step: dict[str, Any] = steps[0]
    return step


def _command(script: str, program: str, env: Mapping[str, str]) -> list[str]:
    """The argument list after `program` in a shell step, variables filled in."""
    joined = script.replace("\\\n", " ")
    line = next(line for line in joined.splitlines() if program in line)
    words = []
    for word in shlex.split(line.split(program, 1)[1]):
        if word in (">", "||", "&&"):
            break
        words.append(word.removesuffix(")"))
    return [re.sub(r"\$(\w+)", lambda m: env.get(m[1], "1"), w) for w in words]


def test_workflow_steps_use_real_commands_and_files() -> None:
    document = _workflow()
    # PyYAML reads the key `on` as True (YAML 1.1).
    assert "pull_request" in document[True]
    job = document["jobs"]["compare"]
    env = job["env"]
    checkouts = [s for s in job["steps"] if s.get("uses", "").startswith(
        "actions/checkout@")]  # fmt: skip
    assert sorted(s["with"]["path"] for s in checkouts) == ["baseline", "candidate"]
    assert "pip install -q -e ." in _step(job, "pip install")["run"]

    load_workload(ROOT / env["WORKLOAD"])
    for key in ("TEST_DURATION", "WARMUP_DURATION", "PERIOD"):
        assert parse_duration(env[key], key, allow_zero=False) > 0
    assert int(env["ROUNDS"]) >= 2

    parser = cli.build_parser()
    run = _command(_step(job, "bench run")["run"], "bench", env)
    args, unknown = parser.parse_known_args(run)
    assert unknown == []
    assert (args.command, args.test_duration, args.period) == ("run", "30s", "1s")
    compare = _command(_step(job, "bench compare")["run"], "bench", env)
    args, unknown = parser.parse_known_args(compare)
    assert unknown == []
    assert args.command == "compare"
    assert args.baseline == ["results/base-*.json"]
    assert args.candidate == ["results/cand-*.json"]
    assert args.json == "results/compare.json"
    report = _command(_step(job, "bench report")["run"], "bench", env)
    args, unknown = parser.parse_known_args(report)
    assert unknown == []
    assert args.command == "report" and args.output == "results/report"
    upload = next(s for s in job["steps"] if "upload-artifact" in s.get("uses", ""))
    assert upload["if"] == "always()" and upload["with"]["path"] == "results/"


def _workspace(tmp_path: Path) -> Path:
    """Both checkouts as the workflow lays them out, each with its `.venv/bin`.

    Both sides are this tree and this environment's `bench`: the install
    step needs the network, everything after it runs for real.
    """
    bench_script = Path(sys.executable).parent / "bench"
    if not bench_script.exists():
        pytest.fail(
            f"{bench_script} is missing: install the project (pip install -e .)"
        )
    for side in ("baseline", "candidate"):
        checkout = tmp_path / side
        (checkout / ".venv" / "bin").mkdir(parents=True)
        (checkout / ".venv" / "bin" / "bench").symlink_to(bench_script)
        for folder in ("payload", "workloads"):
            (checkout / folder).symlink_to(ROOT / folder)
    return tmp_path


@dataclass(frozen=True)
class WorkflowRun:
    """What the workflow's run and compare steps left, and their exit codes."""

    workspace: Path
    summary: Path
    statuses: list[int]


@pytest.fixture(scope="module")
def workflow_run(tmp_path_factory: pytest.TempPathFactory) -> WorkflowRun:
    """The two steps' scripts, run by bash as Actions runs them, real `bench`.

    Shorter than in CI (two rounds of 1 s each) to keep the suite quick;
    run once for the tests below.
    """
    tmp_path = tmp_path_factory.mktemp("workflow")
    job: dict[str, Any] = _workflow()["jobs"]["compare"]
    workspace = _workspace(tmp_path)
    summary = tmp_path / "summary.md"
    env = {
        **os.environ,
        **job["env"],
        "TEST_DURATION": "1s",
        "WARMUP_DURATION": "0",
        "PERIOD": "250ms",
        "ROUNDS": "2",
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    statuses = []
    for needle in ("bench run", "bench compare", "bench report"):
        step = _step(job, needle)
        assert step["shell"] == "bash"
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=workspace,
            env=env,
            capture_output=True,
            text=True,
            timeout=100,
            check=False,
        )
        statuses.append(done.returncode)
        assert done.returncode in (0, 1), done.stderr[-2000:]
    return WorkflowRun(workspace, summary, statuses)


def test_workflow_run_and_compare_steps_execute(workflow_run: WorkflowRun) -> None:
    run_status, compare_status, report_status = workflow_run.statuses
    assert run_status == 0 and report_status == 0
    results = workflow_run.workspace / "results"
    assert "cand-2" in (results / "report" / "index.html").read_text()
    names = ["base-1", "cand-1", "base-2", "cand-2"]
    starts = [
        json.loads((results / f"{n}.json.sidecar").read_text())["startedAt"]
        for n in names
    ]
    assert starts == sorted(starts)  # baseline and candidate in turn
    table = (results / "compare.md").read_text()
    assert table.startswith("### bench compare: smoke / 1 topic / 4 partitions")
    assert workflow_run.summary.read_text() == table
    document = json.loads((results / "compare.json").read_text())
    assert document["baseline"]["files"] == [
        "results/base-1.json",
        "results/base-2.json",
    ]
    # The step fails exactly when something regressed.
    assert compare_status == (1 if document["regressed"] else 0)
    for name in ("smaller-is-better.json", "bigger-is-better.json"):
        assert json.loads((results / "github-benchmark" / name).read_text())


def test_real_result_against_a_slower_copy(
    bench: Bench, tmp_path: Path, workflow_run: WorkflowRun
) -> None:
    """A real `bench run` result, and a copy with its publish p99 raised."""
    real = workflow_run.workspace / "results" / "base-1.json"
    slower = loads_result(real.read_text())
    # Past the highest period as well, however the run's periods spread.
    periods = slower.publish_latency_99pct
    factor = max(3.0, 2 * max(periods) / slower.aggregated_publish_latency_99pct)
    slower.aggregated_publish_latency_99pct *= factor
    slower.publish_latency_99pct = [v * factor for v in periods]
    copy = tmp_path / "slower.json"
    copy.write_text(dumps_result(slower))
    shutil.copy(f"{real}.sidecar", f"{copy}.sidecar")

    code, out, _ = bench("compare", real, "--candidate", real)
    assert code == 0 and "No regression past its threshold." in out
    assert {_row(out, m)[3] for m in DEFAULT_THRESHOLDS_PCT if m in out} == {"+0.0 %"}
    code, out, _ = bench("compare", real, "--candidate", copy)
    assert code == 1
    change = f"{(factor - 1) * 100:+.1f} %"
    assert _row(out, "publishLatency99pct")[3:] == [change, "15 %", "regressed"]
