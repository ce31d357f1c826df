"""`bench report`: the page built from real runs, from OMB's own files, from
awkward inputs (names with `/`, equal labels, an aborted run) and bad ones.

The hand-written OMB result below has numbers chosen so every cell of its
summary table is known in advance: publish rates 1,000 / 1,100 / 1,200 msg/s
(mean 1,100.0), consume rates 950 / 1,000 / 1,300 (mean 1,083.3), publish
latency p50 1.25, p99 12.5, p99.9 40 and max 97.125 ms, publish delay p50 3,
p99 1,250, p99.9 4,000 and max 12,345 µs, end-to-end p50 2.5, p99 20.25,
p99.9 55 and max 120.5 ms. It has no end-to-end quantile map, as a file from
another writer might not, so that chart has no data while the table does.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import resource
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup, Tag
from conftest import Bench
from PIL import Image

from reports.charts import RUN_COLOURS, quantile_figure, quantile_series
from reports.report import QUANTILE_CHARTS, TIME_SERIES_CHARTS, file_stem
from runner import cli

ROOT = Path(__file__).resolve().parent.parent
CHART_SLUGS = [spec.slug for spec in TIME_SERIES_CHARTS + QUANTILE_CHARTS]


# Summary rows read straight from a result's OMB keys, with their units.
AGGREGATED_ROWS = {
    "aggregated_publish_latency_50pct": ("aggregatedPublishLatency50pct", "ms"),
    "aggregated_publish_latency_99pct": ("aggregatedPublishLatency99pct", "ms"),
    "aggregated_publish_latency_999pct": ("aggregatedPublishLatency999pct", "ms"),
    "aggregated_publish_latency_max": ("aggregatedPublishLatencyMax", "ms"),
    "aggregated_publish_delay_latency_50pct": (
        "aggregatedPublishDelayLatency50pct",
        "µs",
    ),
    "aggregated_publish_delay_latency_99pct": (
        "aggregatedPublishDelayLatency99pct",
        "µs",
    ),
    "aggregated_publish_delay_latency_999pct": (
        "aggregatedPublishDelayLatency999pct",
        "µs",
    ),
    "aggregated_publish_delay_latency_max": ("aggregatedPublishDelayLatencyMax", "µs"),
    "aggregated_end_to_end_latency_50pct": ("aggregatedEndToEndLatency50pct", "ms"),
    "aggregated_end_to_end_latency_99pct": ("aggregatedEndToEndLatency99pct", "ms"),
    "aggregated_end_to_end_latency_999pct": ("aggregatedEndToEndLatency999pct", "ms"),
    "aggregated_end_to_end_latency_max": ("aggregatedEndToEndLatencyMax", "ms"),
}
SHAPE_ROWS = {
    "message_size_bytes": "messageSize",
    "topics": "topics",
    "partitions": "partitions",
    "producers_per_topic": "producersPerTopic",
    "consumers_per_topic": "consumersPerTopic",
}


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two short runs of the smoke workload, side by side, each with its own
    embedded server: one with two worker processes, one with a single one."""
    folder = tmp_path_factory.mktemp("runs")
    paths = [folder / "two-workers.json", folder / "one-worker.json"]
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "runner.cli",
                "-q",
                "run",
                "workloads/smoke.yaml",
                "--test-duration",
                "3s",
                "--warmup-duration",
                "1s",
                "--period",
                "1s",
                "--workers",
                workers,
                "-o",
                str(path),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for path, workers in zip(paths, ("2", "1"), strict=True)
    ]
    for process in processes:
        out, err = process.communicate(timeout=90)
        assert process.returncode == 0, err
    return paths


# --------------------------------------------------------------------------
# Reading the page


def _page(index: Path) -> BeautifulSoup:
    return BeautifulSoup(index.read_text(encoding="utf-8"), "html.parser")


def _section(page: BeautifulSoup, name: str) -> Tag:
    for section in page.find_all("section", class_="workload"):
        heading = section.find("h2")
        if heading is not None and heading.get_text() == name:
            return section
    raise AssertionError(f"no section headed {name!r}")


def _figure(section: Tag, slug: str) -> Tag:
    figure = section.find("figure", attrs={"data-chart": slug})
    assert isinstance(figure, Tag), slug
    return figure


def _chart_png(figure: Tag, folder: Path) -> Image.Image:
    """The figure's embedded PNG, checked against the file it links to."""
    img = figure.find("img")
    assert isinstance(img, Tag), figure.get("data-chart")
    prefix = "data:image/png;base64,"
    src = str(img["src"])
    assert src.startswith(prefix)
    data = base64.b64decode(src[len(prefix) :], validate=True)
    link = figure.find("a")
    assert isinstance(link, Tag)
    href = str(link["href"])
    assert "/" not in href and "\\" not in href
    assert (folder / href).read_bytes() == data
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image.convert("RGB")


def _pixels_of(image: Image.Image, colour: str) -> int:
    """How many pixels are exactly `colour` (#rrggbb): a run's line or marks."""
    wanted = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
    counts = image.getcolors(maxcolors=image.width * image.height) or []
    return sum(count for count, rgb in counts if rgb == wanted)


def _table(section: Tag, css_class: str) -> dict[str, list[str]]:
    """{data-metric or data-fact: cell texts, one per run}."""
    table = section.find("table", class_=css_class)
    assert isinstance(table, Tag)
    rows = {}
    for row in table.find_all("tr"):
        key = row.get("data-metric") or row.get("data-fact")
        if key:
            cells = row.find_all("td", attrs={"data-run": True})
            rows[str(key)] = [cell.get_text() for cell in cells]
    return rows


def _units(section: Tag) -> dict[str, str]:
    units = {}
    for row in section.find_all("tr", attrs={"data-metric": True}):
        unit = row.find("td", class_="unit")
        assert isinstance(unit, Tag)
        units[str(row["data-metric"])] = unit.get_text()
    return units


def _run_labels(section: Tag) -> list[str]:
    table = section.find("table", class_="summary")
    assert isinstance(table, Tag)
    return [th.get_text() for th in table.find_all("th", class_="run")]


def _assert_shown(cell: str, expected: float) -> None:
    """The cell shows `expected`, rounded to the digits it shows."""
    number = cell.replace(",", "")
    decimals = len(number.partition(".")[2])
    assert float(number) == pytest.approx(expected, abs=0.5 * 10**-decimals + 1e-9), (
        cell,
        expected,
    )


# --------------------------------------------------------------------------
# Results to report on


def _omb_result(**overrides: Any) -> dict[str, Any]:
    """The hand-written result of the module docstring, as OMB's tool writes."""
    document: dict[str, Any] = {
        "workload": "1 topic / 1 partition / 1Kb",
        "driver": "Redis",
        "messageSize": 1024,
        "topics": 1,
        "partitions": 1,
        "producersPerTopic": 1,
        "consumersPerTopic": 1,
        "publishRate": [1000.0, 1100.0, 1200.0],
        "publishErrorRate": [0.0, 0.0, 0.0],
        "consumeRate": [950.0, 1000.0, 1300.0],
        "backlog": [50, 150, 0],
        "publishLatencyAvg": [2.0, 2.5, 2.25],
        "publishLatency99pct": [10.0, 12.5, 11.0],
        "publishDelayLatency99pct": [1000, 1250, 1100],
        "endToEndLatencyAvg": [3.0, 3.5, 3.25],
        "endToEndLatency95pct": [9.0, 9.5, 9.25],
        "aggregatedPublishLatencyAvg": 2.25,
        "aggregatedPublishLatency50pct": 1.25,
        "aggregatedPublishLatency99pct": 12.5,
        "aggregatedPublishLatency999pct": 40.0,
        "aggregatedPublishLatencyMax": 97.125,
        "aggregatedPublishDelayLatencyAvg": 10.5,
        "aggregatedPublishDelayLatency50pct": 3,
        "aggregatedPublishDelayLatency99pct": 1250,
        "aggregatedPublishDelayLatency999pct": 4000,
        "aggregatedPublishDelayLatencyMax": 12345,
        "aggregatedPublishLatencyQuantiles": {
            "50.0": 1.25,
            "90.0": 5.0,
            "99.0": 12.5,
            "99.9": 40.0,
            "100.0": 97.125,
        },
        "aggregatedPublishDelayLatencyQuantiles": {
            "50.0": 3,
            "99.0": 1250,
            "99.9": 4000,
            "100.0": 12345,
        },
        "aggregatedEndToEndLatencyAvg": 3.25,
        "aggregatedEndToEndLatency50pct": 2.5,
        "aggregatedEndToEndLatency99pct": 20.25,
        "aggregatedEndToEndLatency999pct": 55.0,
        "aggregatedEndToEndLatencyMax": 120.5,
    }
    document.update(overrides)
    return document


def _aborted_result(workload: str) -> dict[str, Any]:
    """A run stopped before its first period: empty series, empty histograms."""
    document = _omb_result(workload=workload)
    for key, value in list(document.items()):
        if isinstance(value, list):
            document[key] = []
        elif isinstance(value, dict):
            document[key] = {}
        elif key.startswith("aggregated"):
            document[key] = 0
    return document


def _sidecar(started_at: str) -> dict[str, Any]:
    return {
        "schemaVersion": 1,
        "startedAt": started_at,
        "finishedAt": started_at,
        "runSettings": {"periodSeconds": 10.0, "workers": 2},
        "counters": {"messagesSent": 33000, "messagesReceived": 32500},
    }


def _write(path: Path, document: dict[str, Any], sidecar: Any = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    if sidecar is not None:
        Path(f"{path}.sidecar").write_text(json.dumps(sidecar), encoding="utf-8")
    return path


# --------------------------------------------------------------------------
# Real runs


def test_report_of_two_real_runs(
    bench: Bench, real_runs: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "report"
    status, stdout, stderr = bench("report", *map(str, real_runs), "-o", str(out))
    assert status == 0, stderr
    assert stdout == f"{out / 'index.html'}\n"

    documents = [json.loads(path.read_text()) for path in real_runs]
    sidecars = [json.loads(Path(f"{path}.sidecar").read_text()) for path in real_runs]
    section = _section(_page(out / "index.html"), documents[0]["workload"])

    # Both runs are in every chart, each in its own colour.
    for slug in CHART_SLUGS:
        image = _chart_png(_figure(section, slug), out)
        for index in range(len(real_runs)):
            assert _pixels_of(image, RUN_COLOURS[index]) > 20, (slug, index)
    written = sorted(path.name for path in out.iterdir())
    assert len(written) == len(CHART_SLUGS) + 1  # the charts and index.html

    labels = _run_labels(section)
    for label, sidecar in zip(labels, sidecars, strict=True):
        assert label.startswith("Redis @ " + sidecar["startedAt"][:10])

    table = _table(section, "summary")
    units = _units(section)
    expected: dict[str, list[float]] = {
        "publish_rate": [statistics.fmean(d["publishRate"]) for d in documents],
        "consume_rate": [statistics.fmean(d["consumeRate"]) for d in documents],
        "periods": [len(d["publishRate"]) for d in documents],
        "period_s": [s["runSettings"]["periodSeconds"] for s in sidecars],
    }
    for row, key in SHAPE_ROWS.items():
        expected[row] = [d[key] for d in documents]
    for row, (key, unit) in AGGREGATED_ROWS.items():
        expected[row] = [d[key] for d in documents]
        assert units[row] == unit
    assert set(table) == set(expected)
    assert all(periods >= 1 for periods in expected["periods"])
    for row, values in expected.items():
        for cell, value in zip(table[row], values, strict=True):
            _assert_shown(cell, value)

    facts = _table(section, "settings")
    assert facts["runSettings.workers"] == ["2", "1"]
    assert facts["server.version"] == [s["server"]["version"] for s in sidecars]
    assert facts["startedAt"] == [s["startedAt"] for s in sidecars]
    assert facts["counters.messagesSent"] == [
        str(s["counters"]["messagesSent"]) for s in sidecars
    ]
    assert facts["driver.config.redisPort"] == [
        str(s["driver"]["config"]["redisPort"]) for s in sidecars
    ]


# --------------------------------------------------------------------------
# OMB's own files


def test_report_of_an_omb_result_without_sidecar(bench: Bench, tmp_path: Path) -> None:
    result = _write(tmp_path / "omb" / "java-result.json", _omb_result())
    out = tmp_path / "report"
    status, stdout, _ = bench("report", "--json", str(result), "-o", str(out))
    assert status == 0

    section = _section(_page(out / "index.html"), "1 topic / 1 partition / 1Kb")
    assert _run_labels(section) == ["Redis (java-result.json)"]
    table = {row: cells[0] for row, cells in _table(section, "summary").items()}
    assert table == {
        "message_size_bytes": "1,024",
        "topics": "1",
        "partitions": "1",
        "producers_per_topic": "1",
        "consumers_per_topic": "1",
        "periods": "3",
        "period_s": "10.0",  # OMB's period: no sidecar says otherwise
        "publish_rate": "1,100.0",
        "consume_rate": "1,083.3",
        "aggregated_publish_latency_50pct": "1.250",
        "aggregated_publish_latency_99pct": "12.500",
        "aggregated_publish_latency_999pct": "40.000",
        "aggregated_publish_latency_max": "97.125",
        "aggregated_publish_delay_latency_50pct": "3",
        "aggregated_publish_delay_latency_99pct": "1,250",
        "aggregated_publish_delay_latency_999pct": "4,000",
        "aggregated_publish_delay_latency_max": "12,345",
        "aggregated_end_to_end_latency_50pct": "2.500",
        "aggregated_end_to_end_latency_99pct": "20.250",
        "aggregated_end_to_end_latency_999pct": "55.000",
        "aggregated_end_to_end_latency_max": "120.500",
    }

    # Every series the file has is drawn; the one map it lacks is no data.
    no_map = "end-to-end-latency-quantiles"
    for slug in CHART_SLUGS:
        figure = _figure(section, slug)
        if slug == no_map:
            assert figure.find("img") is None
            assert "no data" in figure.get_text()
        else:
            assert _pixels_of(_chart_png(figure, out), RUN_COLOURS[0]) > 20, slug
    assert section.find("table", class_="settings") is None
    assert "no sidecar" in section.get_text().lower()

    summary = json.loads(stdout)
    (run,) = summary["workloads"][0]["runs"]
    assert run["figures"]["period_s"] == 10.0
    assert run["figures"]["publish_rate"] == pytest.approx(1100.0)
    assert run["startedAt"] is None
    assert summary["workloads"][0]["charts"][no_map] is None
    assert summary["report"] == str(out / "index.html")


def test_a_key_the_file_lacks_is_no_data(bench: Bench, tmp_path: Path) -> None:
    # Another writer left out p99.9 but gave the rest: no figure, never 0.
    document = _omb_result()
    del document["aggregatedPublishLatency999pct"]
    result = _write(tmp_path / "r.json", document)
    out = tmp_path / "out"
    status, stdout, stderr = bench("report", "--json", str(result), "-o", str(out))
    assert status == 0, stderr
    table = _table(_section(_page(out / "index.html"), document["workload"]), "summary")
    assert table["aggregated_publish_latency_999pct"] == ["no data"]
    assert table["aggregated_publish_latency_99pct"] == ["12.500"]
    (run,) = json.loads(stdout)["workloads"][0]["runs"]
    assert run["figures"]["aggregated_publish_latency_999pct"] is None


def test_quantile_axis_spans_90_to_99999_percent() -> None:
    series = quantile_series(
        "run", 0, {0.0: 0.5, 50.0: 1.0, 90.0: 2.0, 99.0: 4.0, 99.999: 9.0, 100.0: 12.0}
    )
    assert series.xs == pytest.approx([0.0, math.log10(2), 1, 2, 5])
    figure = quantile_figure("Latency", "Latency (ms)", [series])
    assert figure is not None
    (axes,) = figure.axes
    assert axes.get_xlim() == (1.0, 5.0)
    labels = [label.get_text() for label in axes.get_xticklabels()]
    assert labels == ["90 %", "99 %", "99.9 %", "99.99 %", "99.999 %"]


def test_sidecar_facts_of_the_wrong_type_are_left_out(
    bench: Bench, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sidecar = _sidecar("2026-01-05T10:00:00")
    sidecar["counters"] = 5
    sidecar["runSettings"]["periodSeconds"] = -1
    sidecar["chosenRates"] = [{"atSeconds": 1.0, "rate": 10.0}, {"atSeconds": "x"}]
    result = _write(tmp_path / "r.json", _omb_result(), sidecar)
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="reports.results"):
        status, _, stderr = bench("report", str(result), "-o", str(out))
    assert status == 0, stderr

    path = f"{result}.sidecar"
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: runSettings.periodSeconds: -1 is not allowed; expected a "
        "number > 0; ignoring it",
        f"{path}: counters: 5 is not allowed; expected an object; ignoring it",
        f"{path}: chosenRates[1].atSeconds: 'x' is not allowed; expected a "
        "number >= 0; ignoring all of chosenRates",
    ]
    # The rest of the sidecar is used: its start time, its other settings.
    section = _section(_page(out / "index.html"), _omb_result()["workload"])
    assert _run_labels(section) == ["Redis @ 2026-01-05 10:00:00"]
    summary = _table(section, "summary")
    assert summary["period_s"] == ["10.0"]  # OMB's, not -1
    facts = _table(section, "settings")
    assert facts["runSettings.workers"] == ["2"]
    assert not [key for key in facts if key.startswith(("counters", "chosenRates"))]


# --------------------------------------------------------------------------
# Awkward input: names that are paths, equal labels, an aborted run


def test_names_with_slashes_repeat_runs_and_an_aborted_one(
    bench: Bench, tmp_path: Path
) -> None:
    """A and B: the same workload and driver at different times; C aborted."""
    name = "1 topic / 1 partition / 1Kb"
    results = tmp_path / "results"
    first = _write(results / "a.json", _omb_result(), _sidecar("2026-01-05T10:00:00"))
    later = _omb_result(publishRate=[2000.0, 2100.0, 2200.0])
    second = _write(results / "b.json", later, _sidecar("2026-01-05T11:30:00"))
    aborted = _write(results / "c.json", _aborted_result(name))
    out = tmp_path / "out"

    status, stdout, stderr = bench(
        "report", "--json", *map(str, (first, second, aborted)), "-o", str(out)
    )
    assert status == 0, stderr

    # Flat folder, no name made from the workload's "/" or spaces.
    assert [p for p in out.rglob("*") if p.parent != out or p.is_dir()] == []
    assert all(" " not in p.name for p in out.iterdir())
    assert not (out / "1 topic ").exists()

    page = _page(out / "index.html")
    section = _section(page, name)
    title = page.find("title")
    assert isinstance(title, Tag) and name in title.get_text()
    labels = _run_labels(section)
    assert labels == [
        "Redis @ 2026-01-05 10:00:00",
        "Redis @ 2026-01-05 11:30:00",
        "Redis (c.json)",
    ]
    table = _table(section, "summary")
    assert table["publish_rate"] == ["1,100.0", "2,100.0", "no data"]
    for row in AGGREGATED_ROWS:
        assert table[row][2] == "no data", row
    assert table["periods"] == ["0" if i == 2 else "3" for i in range(3)]

    # A and B are both drawn, each in its own colour.
    image = _chart_png(_figure(section, "publish-rate"), out)
    assert _pixels_of(image, RUN_COLOURS[0]) > 20
    assert _pixels_of(image, RUN_COLOURS[1]) > 20

    summary = json.loads(stdout)
    (workload,) = summary["workloads"]
    assert workload["name"] == name
    assert [run["label"] for run in workload["runs"]] == labels
    assert workload["runs"][2]["figures"]["aggregated_publish_latency_99pct"] is None
    charts = workload["charts"]
    assert charts.pop("end-to-end-latency-quantiles") is None  # A and B have no map
    assert sorted(charts.values()) == sorted(p.name for p in out.glob("*.png"))


def test_equal_labels_warn_and_stay_apart(
    bench: Bench, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sidecar = _sidecar("2026-01-05T10:00:00")
    first = _write(tmp_path / "x" / "run.json", _omb_result(), sidecar)
    second = _write(tmp_path / "y" / "run.json", _omb_result(), sidecar)
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="reports.report"):
        status, _, stderr = bench("report", str(first), str(second), "-o", str(out))
    assert status == 0, stderr

    labels = _run_labels(_section(_page(out / "index.html"), _omb_result()["workload"]))
    assert len(set(labels)) == 2
    assert labels[0] == "Redis @ 2026-01-05 10:00:00"
    assert str(second) in labels[1]
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "Redis @ 2026-01-05 10:00:00" in warning.getMessage()


def test_a_workload_with_no_data_at_all(bench: Bench, tmp_path: Path) -> None:
    name = "../../escape / attempt"
    aborted = _write(tmp_path / "c.json", _aborted_result(name))
    out = tmp_path / "out"
    status, _, stderr = bench("report", str(aborted), "-o", str(out))
    assert status == 0, stderr
    assert [p.name for p in out.iterdir()] == ["index.html"]
    section = _section(_page(out / "index.html"), name)
    for slug in CHART_SLUGS:
        figure = _figure(section, slug)
        assert figure.find("img") is None
        assert "no data" in figure.get_text()


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("1 topic / 1 partition / 1Kb", "1-topic-1-partition-1kb"),
        ("../../etc/passwd", "etc-passwd"),
        ("C:\\temp\\x", "c-temp-x"),
        ("", "workload"),
        ("///", "workload"),
        ("ünïcode name", "n-code-name"),
    ],
)
def test_file_stem(name: str, stem: str) -> None:
    assert file_stem(name) == stem


def test_workload_names_are_escaped(bench: Bench, tmp_path: Path) -> None:
    name = "<script>alert(1)</script> & co"
    result = _write(tmp_path / "r.json", _omb_result(workload=name))
    out = tmp_path / "out"
    assert bench("report", str(result), "-o", str(out))[0] == 0
    text = (out / "index.html").read_text()
    assert "<script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in text
    assert _section(_page(out / "index.html"), name) is not None


def test_dollar_signs_in_labels_are_text(bench: Bench, tmp_path: Path) -> None:
    # Unescaped, matplotlib would read `$...$` as math notation, and this
    # one does not parse.
    driver = "Redis $\\frac$ 5$"
    result = _write(tmp_path / "r.json", _omb_result(driver=driver))
    out = tmp_path / "out"
    status, _, stderr = bench("report", str(result), "-o", str(out))
    assert status == 0, stderr
    section = _section(_page(out / "index.html"), _omb_result()["workload"])
    assert _run_labels(section) == [f"{driver} (r.json)"]
    image = _chart_png(_figure(section, "publish-rate"), out)
    assert _pixels_of(image, RUN_COLOURS[0]) > 20


# --------------------------------------------------------------------------
# Bad input


def _bench_process(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner.cli", "report", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _assert_one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("bench report: error: ")
    for word in words:
        assert word in lines[0]


def test_missing_result_file(tmp_path: Path) -> None:
    good = _write(tmp_path / "good.json", _omb_result())
    out = tmp_path / "out"
    done = _bench_process(str(good), str(tmp_path / "gone.json"), "-o", str(out))
    _assert_one_line_error(done, "gone.json", "no such file")
    assert not out.exists()


def test_output_folder_is_a_file(bench: Bench, tmp_path: Path) -> None:
    good = _write(tmp_path / "good.json", _omb_result())
    blocker = tmp_path / "taken"
    blocker.write_text("a file")
    status, stdout, stderr = bench("report", str(good), "-o", str(blocker))
    assert (status, stdout) == (2, "")
    assert stderr == (
        f"bench report: error: --output: {str(blocker)!r} is not allowed; it is a "
        "file, not a folder; expected a folder the report can be written to\n"
    )
    assert blocker.read_text() == "a file"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{ not json", ("not valid JSON",)),
        ("[1, 2]", ("not a JSON object",)),
        ("{}", ("'workload, driver, publishRate, consumeRate' is not allowed; "
                "missing keys; expected an OMB result file",)),
        # A string is not a list of one-letter rates.
        (json.dumps(_omb_result(publishRate="fast")),
         ("publishRate: 'fast' is not allowed; expected a list of numbers",)),
        (json.dumps(_omb_result(consumeRate=[1.0, "2"])),
         ("consumeRate[1]: '2' is not allowed; expected a number",)),
        (json.dumps(_omb_result(aggregatedPublishLatency99pct=-5)),
         ("aggregatedPublishLatency99pct: -5 is not allowed; "
          "expected a number >= 0",)),
    ],
)  # fmt: skip
def test_invalid_result_file(
    bench: Bench, tmp_path: Path, text: str, words: tuple[str, ...]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    out = tmp_path / "out"
    status, stdout, stderr = bench("report", str(bad), "-o", str(out))
    assert (status, stdout) == (2, "")
    assert len(stderr.splitlines()) == 1
    assert stderr.startswith(f"bench report: error: {bad}: ")
    for word in words:
        assert word in stderr
    assert not out.exists()


def test_a_sidecar_is_no_result(bench: Bench, tmp_path: Path) -> None:
    result = _write(tmp_path / "r.json", _omb_result(), _sidecar("2026-01-05T10:00"))
    sidecar = Path(f"{result}.sidecar")
    out = tmp_path / "out"
    status, stdout, stderr = bench("report", str(sidecar), "-o", str(out))
    assert (status, stdout) == (2, "")
    assert stderr == (
        f"bench report: error: {sidecar}: 'workload, driver, publishRate, "
        "consumeRate' is not allowed; missing keys; expected an OMB result file "
        "(the JSON `bench run` or OMB writes) (this is a sidecar; give the result "
        "file beside it)\n"
    )
    assert not out.exists()


def test_an_empty_output_path_is_refused(tmp_path: Path) -> None:
    # Path("") is the current folder, which was never asked for.
    good = _write(tmp_path / "in" / "good.json", _omb_result())
    here = tmp_path / "here"
    here.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "runner.cli", "report", str(good), "-o", ""],
        cwd=here,
        capture_output=True,
        text=True,
        timeout=60,
    )
    _assert_one_line_error(done)
    assert done.stderr == (
        "bench report: error: --output: '' is not allowed; an empty path; "
        "expected a folder path\n"
    )
    assert list(here.iterdir()) == []


def test_reusing_a_folder_replaces_the_earlier_report(
    bench: Bench, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = _write(tmp_path / "a.json", _omb_result(workload="first workload"))
    assert bench("report", str(first), "-o", str(out))[0] == 0
    stale = sorted(p.name for p in out.glob("01-first-workload-*.png"))
    assert len(stale) == len(CHART_SLUGS) - 1  # no end-to-end quantile map
    # Files of the user's own, which the report's names do not cover.
    kept = ["notes.txt", "photo.png", "01-Mine.PNG", "1-short.png", "01-x.png.bak"]
    for name in kept:
        (out / name).write_text("mine")
    (out / "02-a-folder.png").mkdir()

    second = _write(tmp_path / "b.json", _omb_result(workload="second"))
    assert bench("report", str(second), "-o", str(out))[0] == 0
    charts = sorted(p.name for p in out.glob("01-*.png") if p.is_file())
    assert charts and all(name.startswith("01-second-") for name in charts)
    assert "first workload" not in (out / "index.html").read_text()
    for name in kept:
        assert (out / name).read_text() == "mine"
    assert (out / "02-a-folder.png").is_dir()


def _limit_file_size() -> None:
    # Files up to 40 kB: the smaller charts can be written, the page (every
    # chart again, in base64) cannot.
    resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))


def test_a_report_that_fails_leaves_no_folder_it_made(tmp_path: Path) -> None:
    good = _write(tmp_path / "good.json", _omb_result())
    target = tmp_path / "new" / "report"
    done = subprocess.run(
        [sys.executable, "-m", "runner.cli", "report", str(good), "-o", str(target)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_limit_file_size,
    )
    _assert_one_line_error(done, str(target / "index.html"), "File too large")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.json"]


def test_output_folder_inside_a_file(bench: Bench, tmp_path: Path) -> None:
    good = _write(tmp_path / "good.json", _omb_result())
    blocker = tmp_path / "file"
    blocker.write_text("")
    target = blocker / "report" / "deeper"
    status, stdout, stderr = bench("report", str(good), "-o", str(target))
    assert (status, stdout) == (2, "")
    assert len(stderr.splitlines()) == 1
    assert "cannot write there" in stderr and str(target) in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "good.json"]


def test_no_result_files_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "configure_logging", lambda *_args, **_kw: None)
    with pytest.raises(SystemExit) as stopped:
        cli.main(["report"])
    assert stopped.value.code == 2
    assert len(capsys.readouterr().err.splitlines()) == 1
