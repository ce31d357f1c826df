"""PNG charts of result series, drawn with matplotlib's Agg renderer.

Figures are built from `matplotlib.figure.Figure` and rendered by the Agg
canvas directly, never through pyplot: no GUI backend is ever chosen, and no
global figure state outlives a call, so charts can be drawn from any thread
or process with or without a display.

Two kinds, both after OMB's chart script:

* time series: one line per run, x in seconds since the measured phase
  began (period i ends at (i + 1) * period), y from 0;
* quantile curves: latency against percentile, with the percentile on a
  log scale of "nines": x = log10(100 / (100 - p)), so 90 %, 99 %, 99.9 %,
  99.99 % and 99.999 % sit at 1 to 5. The view shows just that span, the
  tail; points below 90 % lie left of it, so a line still enters at the
  left edge. The 100 % point (the maximum) has no place on that axis and is
  left out, as OMB leaves it out.

A chart none of whose series holds a finite value is not drawn: the caller
gets None and says "no data" instead.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = [
    "MAX_NINES",
    "MIN_NINES",
    "RUN_COLOURS",
    "Series",
    "nines",
    "quantile_chart",
    "quantile_figure",
    "quantile_series",
    "time_series_chart",
]

#: One colour per run, in the order runs are given (matplotlib's tab10).
RUN_COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)

# Marker shapes differ too, for runs whose lines cross or coincide.
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")

#: The quantile axis starts at 90 % (one nine) and ends at 99.999 %.
MIN_NINES = 1
MAX_NINES = 5

_WIDTH_IN, _HEIGHT_IN, _DPI = 6.4, 3.6, 100
_LEGEND_ROW_IN = 0.22


@dataclass(frozen=True, slots=True)
class Series:
    """One run's line: its legend label, colour index and points."""

    label: str
    index: int
    xs: Sequence[float]
    ys: Sequence[float]

    @property
    def has_data(self) -> bool:
        return any(math.isfinite(y) for y in self.ys)


def nines(percentile: float) -> float:
    """Where a percentile sits on the quantile axis: log10(100 / (100 - p))."""
    return math.log10(100.0 / (100.0 - percentile))


def time_series_chart(
    title: str, y_label: str, series: Sequence[Series]
) -> bytes | None:
    """A PNG of every series against time, or None when none holds data."""
    if not any(line.has_data for line in series):
        return None
    figure, axes = _figure(title)
    for line in series:
        _plot(axes, line)
    axes.set_xlabel("Time (s)")
    axes.set_ylabel(y_label)
    axes.set_xlim(left=0)
    _y_from_zero(axes, series)
    return _png(figure, series)


def quantile_series(label: str, index: int, points: Mapping[float, float]) -> Series:
    """A run's {percentile: latency} map as points on the quantile axis."""
    limit = 100.0 - 10.0 ** (2 - MAX_NINES)  # 99.999
    kept = sorted((p, v) for p, v in points.items() if 0 <= p <= limit + 1e-9)
    return Series(label, index, [nines(p) for p, _ in kept], [v for _, v in kept])


def quantile_chart(title: str, y_label: str, series: Sequence[Series]) -> bytes | None:
    """A PNG of latency by percentile (see `quantile_series`), or None."""
    figure = quantile_figure(title, y_label, series)
    return None if figure is None else _png(figure, series)


def quantile_figure(
    title: str, y_label: str, series: Sequence[Series]
) -> Figure | None:
    """The quantile chart's figure, before it is rendered; None without data."""
    if not any(line.has_data for line in series):
        return None
    figure, axes = _figure(title)
    for line in series:
        _plot(axes, line, markers=False)
    axes.set_xlabel("Percentile")
    axes.set_ylabel(y_label)
    axes.set_xlim(MIN_NINES, MAX_NINES)
    ticks = range(MIN_NINES, MAX_NINES + 1)
    labels = [_percent_label(100.0 - 100.0 / 10.0**x) for x in ticks]
    axes.set_xticks(list(ticks), labels=labels)
    _y_from_zero(axes, series)
    return figure


def _figure(title: str) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(_WIDTH_IN, _HEIGHT_IN), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.set_title(title)
    axes.grid(True, color="#dddddd", linewidth=0.8)
    axes.set_axisbelow(True)
    return figure, axes


def _plot(axes: Axes, line: Series, markers: bool = True) -> None:
    colour = RUN_COLOURS[line.index % len(RUN_COLOURS)]
    # Labels are user text: a `$` would start matplotlib's math notation,
    # which garbles the label or fails to parse.
    label = line.label.replace("$", r"\$")
    if not line.has_data:
        label += " (no data)"
    ys = [y if math.isfinite(y) else math.nan for y in line.ys]
    marker = _MARKERS[line.index % len(_MARKERS)] if markers else None
    # Each later run is drawn thinner, so where runs have equal values (two
    # flat zero lines of error rates) every one still shows round the next.
    axes.plot(
        line.xs,
        ys,
        color=colour,
        label=label,
        linewidth=max(2.6 - 0.6 * line.index, 1.0),
        marker=marker,
        markersize=max(7.0 - 1.5 * line.index, 3.0),
    )


def _y_from_zero(axes: Axes, series: Sequence[Series]) -> None:
    # OMB's charts start at 0 and leave a margin above the highest point; a
    # chart of zeros (no errors) still gets a unit-high y range. The small
    # margin below keeps a line along 0 clear of the axis.
    values = [y for line in series for y in line.ys if math.isfinite(y)]
    bottom = min(values + [0.0])
    top = max(values + [0.0])
    top = top * 1.1 if top > 0 else 1.0
    axes.set_ylim(bottom - 0.02 * (top - bottom), top)


def _png(figure: Figure, series: Sequence[Series]) -> bytes:
    # The legend sits under the plot (run labels are long and would cover
    # the lines), and the figure grows by its rows, so the plots of one
    # workload, which all have the same legend, come out the same size.
    columns = 1 if max(len(line.label) for line in series) > 40 else 2
    columns = min(columns, len(series))
    rows = math.ceil(len(series) / columns)
    figure.set_figheight(_HEIGHT_IN + _LEGEND_ROW_IN * rows)
    figure.legend(
        loc="outside lower center", ncol=columns, fontsize="small", frameon=False
    )
    buffer = io.BytesIO()
    # Values near the largest float (a hand-made result, say) overflow in
    # the tick arithmetic; the chart is still drawn, without a warning.
    with numpy.errstate(over="ignore", invalid="ignore"):
        figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _percent_label(percentile: float) -> str:
    # 99.9 rather than 99.90000000000001: at most three decimals, no zeros.
    return f"{percentile:.3f}".rstrip("0").rstrip(".") + " %"
