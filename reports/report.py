"""One HTML page of charts and tables for a set of result files.

Results are grouped by their `workload` field, as OMB's chart script
groups them, and every result of a workload is drawn into the same charts,
labelled by driver and start time. The page is self-contained (charts are
embedded as PNG data URIs), so it opens from disk or as a mail attachment;
each chart is also written beside it as a PNG file.

Workload names are user text: they are escaped in the page and never used
as file names as they are. Chart files are named `<nn>-<name>-<chart>.png`,
where `<name>` keeps only ASCII letters and digits of the workload name
(runs of anything else become one `-`) and `<nn>` numbers the workloads, so
two names that read alike ("a/b", "a b") still get files of their own.
A report written into the folder of an earlier one first removes that
one's page and chart files (by those names), so no stale chart lingers.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jinja2

from aioredismq.errors import ConfigError
from reports import charts
from reports.results import ResultRun, mean
from runner.files import write_bytes_safely

__all__ = [
    "DEFAULT_PERIOD_S",
    "INDEX_NAME",
    "QUANTILE_CHARTS",
    "SUMMARY_METRICS",
    "TIME_SERIES_CHARTS",
    "Chart",
    "ChartSpec",
    "Metric",
    "Report",
    "RunView",
    "Section",
    "build_report",
    "file_stem",
    "period_s",
    "render_html",
    "write_report",
]

logger = logging.getLogger(__name__)

#: OMB's stats period, assumed for results that come without a sidecar.
DEFAULT_PERIOD_S: Final = 10.0

INDEX_NAME: Final = "index.html"

NO_DATA: Final = "no data"

_STEM_LENGTH: Final = 60


@dataclass(frozen=True, slots=True)
class ChartSpec:
    """One chart of every workload: what it reads and how it is titled."""

    slug: str  # the file-name part: `01-<workload>-<slug>.png`
    title: str
    y_label: str
    attribute: str  # the TestResult series or quantile map it draws


TIME_SERIES_CHARTS: Final = (
    ChartSpec("publish-rate", "Publish rate", "Rate (msg/s)", "publish_rate"),
    ChartSpec("consume-rate", "Consume rate", "Rate (msg/s)", "consume_rate"),
    ChartSpec("backlog", "Backlog", "Backlog (messages)", "backlog"),
    ChartSpec(
        "publish-error-rate", "Publish error rate", "Rate (err/s)", "publish_error_rate"
    ),
    ChartSpec(
        "publish-latency-p99",
        "Publish latency p99",
        "Latency (ms)",
        "publish_latency_99pct",
    ),
    ChartSpec(
        "publish-delay-p99",
        "Publish delay p99",
        "Delay (µs)",
        "publish_delay_latency_99pct",
    ),
    ChartSpec(
        "end-to-end-latency-p95",
        "End-to-end latency p95",
        "Latency (ms)",
        "end_to_end_latency_95pct",
    ),
    ChartSpec(
        "end-to-end-latency-avg",
        "End-to-end latency average",
        "Latency (ms)",
        "end_to_end_latency_avg",
    ),
)

QUANTILE_CHARTS: Final = (
    ChartSpec(
        "publish-latency-quantiles",
        "Publish latency by percentile",
        "Latency (ms)",
        "aggregated_publish_latency_quantiles",
    ),
    ChartSpec(
        "publish-delay-quantiles",
        "Publish delay by percentile",
        "Delay (µs)",
        "aggregated_publish_delay_latency_quantiles",
    ),
    ChartSpec(
        "end-to-end-latency-quantiles",
        "End-to-end latency by percentile",
        "Latency (ms)",
        "aggregated_end_to_end_latency_quantiles",
    ),
)


# --------------------------------------------------------------------------
# The summary table


@dataclass(frozen=True, slots=True)
class Metric:
    """One row of the summary table.

    `key` names the row in the page (`data-metric`) and in the JSON
    summary: the TestResult attribute the value comes from. `value` gives
    the number, or None when the result has no data for it.
    """

    key: str
    name: str
    unit: str
    value: Callable[[ResultRun], float | None]
    decimals: int


def period_s(run: ResultRun) -> float:
    """The run's stats period: the sidecar's, else OMB's 10 s."""
    settings = (run.sidecar or {}).get("runSettings")
    if isinstance(settings, Mapping):
        value = settings.get("periodSeconds")
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value)
    return DEFAULT_PERIOD_S


def _mean_of(attribute: str) -> Callable[[ResultRun], float | None]:
    def value(run: ResultRun) -> float | None:
        series: list[float] = getattr(run.result, attribute)
        return mean(series) if series else None

    return value


def _field(attribute: str) -> Callable[[ResultRun], float | None]:
    def value(run: ResultRun) -> float | None:
        if not run.has(attribute):
            return None
        return float(getattr(run.result, attribute))

    return value


def _latency(family: str, statistic: str) -> Callable[[ResultRun], float | None]:
    def value(run: ResultRun) -> float | None:
        # An empty histogram gives OMB's zeros and an empty quantile map:
        # that is "no data", not a latency of 0. A file from another writer
        # may leave out the map but give the figures, which count as data.
        # A key the file does not have is no data either.
        result = run.result
        if not run.has(f"aggregated_{family}_{statistic}"):
            return None
        figures = [getattr(result, f"aggregated_{family}_{s}") for s in _STATISTICS]
        if not getattr(result, f"aggregated_{family}_quantiles") and not any(figures):
            return None
        return float(getattr(result, f"aggregated_{family}_{statistic}"))

    return value


_STATISTICS: Final = (
    "avg",
    "50pct",
    "75pct",
    "95pct",
    "99pct",
    "999pct",
    "9999pct",
    "max",
)

# The workload's shape, as OMB's result gives it: (attribute, row name, unit).
_SHAPE: Final = (
    ("message_size_bytes", "Message size", "B"),
    ("topics", "Topics", ""),
    ("partitions", "Partitions per topic", ""),
    ("producers_per_topic", "Producers per topic", ""),
    ("consumers_per_topic", "Consumers per subscription", ""),
)

# (attribute prefix, row name, unit, decimals): OMB's units, publish delay
# alone in µs (whole numbers); the ms figures are µs / 1000, so three
# decimals show every digit there is.
_FAMILIES: Final = (
    ("publish_latency", "Publish latency", "ms", 3),
    ("publish_delay_latency", "Publish delay", "µs", 0),
    ("end_to_end_latency", "End-to-end latency", "ms", 3),
)
_SHOWN: Final = (
    ("50pct", "p50"),
    ("99pct", "p99"),
    ("999pct", "p99.9"),
    ("max", "max"),
)


def _summary_metrics() -> tuple[Metric, ...]:
    metrics = [Metric(key, name, unit, _field(key), 0) for key, name, unit in _SHAPE]
    metrics += [
        Metric("periods", "Periods measured", "", _period_count, 0),
        Metric("period_s", "Period", "s", period_s, 1),
        Metric(
            "publish_rate",
            "Publish rate (mean of periods)",
            "msg/s",
            _mean_of("publish_rate"),
            1,
        ),
        Metric(
            "consume_rate",
            "Consume rate (mean of periods)",
            "msg/s",
            _mean_of("consume_rate"),
            1,
        ),
    ]
    for family, name, unit, decimals in _FAMILIES:
        for suffix, statistic in _SHOWN:
            metrics.append(
                Metric(
                    f"aggregated_{family}_{suffix}",
                    f"{name} {statistic}",
                    unit,
                    _latency(family, suffix),
                    decimals,
                )
            )
    return tuple(metrics)


def _period_count(run: ResultRun) -> float | None:
    return len(run.result.publish_rate)


#: The summary table's rows, in order.
SUMMARY_METRICS: Final = _summary_metrics()


def _format(value: float | None, decimals: int) -> str:
    if value is None:
        return NO_DATA
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 1e15:  # beyond any real figure: 1e+20, not 21 digits
        return f"{value:.3g}"
    return f"{value:,.{decimals}f}"


# --------------------------------------------------------------------------
# What the page shows


@dataclass(frozen=True, slots=True)
class RunView:
    """One result as a workload's section shows it."""

    run: ResultRun
    label: str  # unique within its section
    index: int  # its colour and marker in every chart

    @property
    def colour(self) -> str:
        return charts.RUN_COLOURS[self.index % len(charts.RUN_COLOURS)]


@dataclass(frozen=True, slots=True)
class Chart:
    """A drawn chart (its PNG and file name), or None for both: no data."""

    spec: ChartSpec
    file_name: str | None
    png: bytes | None

    @property
    def data_uri(self) -> str | None:
        if self.png is None:
            return None
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


@dataclass(frozen=True, slots=True)
class Section:
    """One workload: its runs, charts and tables."""

    name: str  # the workload field, as written
    anchor: str
    runs: list[RunView]
    charts: list[Chart]
    summary: list[tuple[Metric, list[str]]]
    settings: list[tuple[str, list[str]]]

    @property
    def any_sidecar(self) -> bool:
        return any(view.run.sidecar is not None for view in self.runs)


@dataclass(frozen=True, slots=True)
class Report:
    """The whole page, before anything is written."""

    runs: Sequence[ResultRun]  # as given
    sections: list[Section]
    generated_at: str

    @property
    def chart_files(self) -> dict[str, bytes]:
        """Every drawn chart: file name -> PNG."""
        return {
            chart.file_name: chart.png
            for section in self.sections
            for chart in section.charts
            if chart.file_name is not None and chart.png is not None
        }

    def summary(self, index_path: Path) -> dict[str, Any]:
        """A JSON-ready account of the report: sections, runs, figures, files."""
        return {
            "report": str(index_path),
            "workloads": [
                {
                    "name": section.name,
                    "runs": [
                        {
                            "file": str(view.run.path),
                            "label": view.label,
                            "driver": view.run.result.driver,
                            "startedAt": view.run.started_at,
                            "figures": {
                                metric.key: _json_number(metric.value(view.run))
                                for metric in SUMMARY_METRICS
                            },
                        }
                        for view in section.runs
                    ],
                    "charts": {
                        chart.spec.slug: chart.file_name for chart in section.charts
                    },
                }
                for section in self.sections
            ],
        }


def _json_number(value: float | None) -> float | None:
    # JSON has no NaN or infinity; a reader gets null, as for no data.
    return value if value is not None and math.isfinite(value) else None


def build_report(runs: Sequence[ResultRun]) -> Report:
    """Draw every chart and fill every table, in memory."""
    sections = []
    for number, (name, group) in enumerate(_group(runs).items(), start=1):
        stem = f"{number:02d}-{file_stem(name)}"
        views = [
            RunView(run, label, index)
            for index, (run, label) in enumerate(
                zip(group, _labels(name, group), strict=True)
            )
        ]
        sections.append(
            Section(
                name=name,
                anchor=f"workload-{number}",
                runs=views,
                charts=[
                    _chart(spec, stem, views)
                    for spec in TIME_SERIES_CHARTS + QUANTILE_CHARTS
                ],
                summary=[
                    (
                        metric,
                        [_format(metric.value(v.run), metric.decimals) for v in views],
                    )
                    for metric in SUMMARY_METRICS
                ],
                settings=_settings_rows(views),
            )
        )
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return Report(runs, sections, now)


def _group(runs: Iterable[ResultRun]) -> dict[str, list[ResultRun]]:
    # Workloads in the order they first appear, runs in the order given.
    groups: dict[str, list[ResultRun]] = {}
    for run in runs:
        groups.setdefault(run.result.workload, []).append(run)
    return groups


def _labels(workload: str, runs: Sequence[ResultRun]) -> list[str]:
    """Each run's label, made unique within the workload.

    Two runs started in the same second, or two OMB results of the same
    file name in different folders, would share a label; the later ones get
    their path added and, if that is not enough (a file given twice), a
    number.
    """
    labels: list[str] = []
    for run in runs:
        label = run.label
        if label in labels:
            better = f"{label} [{run.path}]"
            logger.warning(
                "workload %r: two results are labelled %r; calling %s %r",
                workload,
                label,
                run.path,
                better,
            )
            label = better
            number = 2
            while label in labels:
                label = f"{better} #{number}"
                number += 1
        labels.append(label)
    return labels


def file_stem(name: str) -> str:
    """A workload name as a file-name part: ASCII letters, digits and `-`."""
    stem = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()
    return stem[:_STEM_LENGTH].rstrip("-") or "workload"


def _chart(spec: ChartSpec, stem: str, views: Sequence[RunView]) -> Chart:
    if spec in QUANTILE_CHARTS:
        series = [
            charts.quantile_series(
                v.label, v.index, getattr(v.run.result, spec.attribute)
            )
            for v in views
        ]
        png = charts.quantile_chart(spec.title, spec.y_label, series)
    else:
        series = [_time_series(v, spec.attribute) for v in views]
        png = charts.time_series_chart(spec.title, spec.y_label, series)
    if png is None:
        return Chart(spec, None, None)
    return Chart(spec, f"{stem}-{spec.slug}.png", png)


def _time_series(view: RunView, attribute: str) -> charts.Series:
    values: list[float] = [float(v) for v in getattr(view.run.result, attribute)]
    step = period_s(view.run)
    xs = [(i + 1) * step for i in range(len(values))]
    return charts.Series(view.label, view.index, xs, values)


# --------------------------------------------------------------------------
# Environment and settings, from sidecars

# Sidecar keys in the order the table shows them; others follow as found.
_SIDECAR_ORDER: Final = (
    "startedAt",
    "finishedAt",
    "workloadFile",
    "driverFile",
    "server",
    "environment",
    "workers",
    "runSettings",
    "counters",
    "driver",
    "workload",
)
_SIDECAR_SKIPPED: Final = frozenset({"schemaVersion"})


def _settings_rows(views: Sequence[RunView]) -> list[tuple[str, list[str]]]:
    """(key, one cell per run) for every fact any sidecar of the section has."""
    flat = [dict(_flatten(v.run.sidecar)) if v.run.sidecar else {} for v in views]
    keys: list[str] = []
    for facts in flat:
        keys += [key for key in facts if key not in keys]
    return [(key, [facts.get(key, "") for facts in flat]) for key in keys]


def _flatten(sidecar: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    ordered = [k for k in _SIDECAR_ORDER if k in sidecar]
    ordered += [k for k in sidecar if k not in ordered and k not in _SIDECAR_SKIPPED]
    for key in ordered:
        yield from _flatten_value(key, sidecar[key])


def _flatten_value(key: str, value: Any) -> Iterable[tuple[str, str]]:
    if isinstance(value, Mapping):
        for inner, item in value.items():
            yield from _flatten_value(f"{key}.{inner}", item)
    elif isinstance(value, list):
        if value:  # an empty list (no rate changes) says nothing
            yield key, "\n".join(_inline(item) for item in value)
    else:
        yield key, _inline(value)


def _inline(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_inline(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_inline(item) for item in value)
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


# --------------------------------------------------------------------------
# Writing


def _environment() -> jinja2.Environment:
    # Autoescape on whatever the template's name: workload names, labels and
    # sidecar values are user text.
    return jinja2.Environment(
        loader=jinja2.PackageLoader("reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(report: Report) -> str:
    """The page's HTML text."""
    template = _environment().get_template("report.html.j2")
    return template.render(
        report=report,
        no_data=NO_DATA,
        default_period_s=_format(DEFAULT_PERIOD_S, 0),
    )


def write_report(runs: Sequence[ResultRun], out_dir: Path) -> tuple[Path, Report]:
    """Build the report of `runs` and write it into `out_dir`.

    Returns the path of the page and the report. The folder is made before
    any chart is drawn, so a folder that cannot be made fails at once. Files
    an earlier report left there by this command's own names (`index.html`,
    `NN-*.png`) are removed first, so no chart of another report lingers;
    nothing else in the folder is touched. A failure raises ConfigError
    (OutputFileError for a file), and whatever this call made or wrote
    before it, the folder included, is removed again.
    """
    made = _make_folder(out_dir)
    written: list[Path] = []
    try:
        report = build_report(runs)
        files = report.chart_files
        files[INDEX_NAME] = render_html(report).encode("utf-8")
        _remove_earlier_report(out_dir)
        for name, content in files.items():
            path = out_dir / name
            write_bytes_safely(path, content, what="report file")
            written.append(path)
    except BaseException as err:
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        for folder in made:  # deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()
        if isinstance(err, OSError):
            raise _output_error(out_dir, err) from err
        raise
    return out_dir / INDEX_NAME, report


#: The names this module gives chart files: `<nn>-<stem>-<slug>.png`.
_CHART_FILE: Final = re.compile(r"[0-9]{2,}-[a-z0-9-]+\.png")


def _remove_earlier_report(out_dir: Path) -> None:
    for entry in out_dir.iterdir():
        ours = entry.name == INDEX_NAME or _CHART_FILE.fullmatch(entry.name)
        if ours and (entry.is_file() or entry.is_symlink()):
            entry.unlink()


def _make_folder(out_dir: Path) -> list[Path]:
    """Make `out_dir`; return the folders this made, deepest first."""
    made = [p for p in (out_dir, *out_dir.parents) if not p.exists()]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _output_error(out_dir, err) from err
    return made


def _output_error(out_dir: Path, err: OSError) -> ConfigError:
    expected = "expected a folder the report can be written to"
    if isinstance(err, FileExistsError):
        reason = "it is a file, not a folder"
    else:
        reason = f"cannot write there ({err.strerror or type(err).__name__})"
    return ConfigError("--output", None, str(out_dir), f"{reason}; {expected}")
