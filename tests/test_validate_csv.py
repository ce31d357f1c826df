"""`bench validate` and `bench csv`: through the command line, no server.

The CSV expected below was worked out by hand from the rules OMB's
`ResultsToCsv` follows (Java HdrHistogram 2.1.12, `new Histogram(10_000_000,
1)`, each rate cut towards zero and recorded with count 2; columns from
getMinNonZeroValue / getMean / getStdDeviation / getMaxValue; `#` and `#.##`
formats, half-even). Slots of that histogram: a value below 32 has its own;
a value of n bits >= 6 lies in a slot 2**(n - 5) wide, starting at a
multiple of that width. The mean and deviation use each slot's median,
lowest + width // 2.

File "a-run.json": 1 topic, 16 partitions, 1024 B.

* publishRate 50012.7, 49987.2, 48000.9 -> 50012, 49987, 48000. All have 16
  bits, slot width 2**11 = 2048. 48000 // 2048 = 23: slot 47104..49151,
  median 48128. 50012 and 49987 // 2048 = 24: slot 49152..51199, median
  50176. Counts: 2 in the first slot, 4 in the second, 6 in all.
  min = lowest of 48000 = 47104; max = highest of 50012 = 51199.
  mean = (2 * 48128 + 4 * 50176) / 6 = 296960 / 6 = 49493.33 -> "49493".
  deviations from mean 148480/3: -4096/3 (x2) and +2048/3 (x4);
  variance = (2 * 4096**2 + 4 * 2048**2) / 9 / 6 = 2048**2 * 2 / 9,
  so std = 2048 * sqrt(2) / 3 = 965.436... -> "965.44".
* consumeRate 0.0, 49990.5, 50001.0 -> 0, 49990, 50001. 0 has its own slot
  (median 0, count 2); the others share slot 49152..51199 (count 4).
  min non-zero = 49152 (OMB asks for the smallest non-zero value, so the
  zero period does not show); max = 51199.
  mean = 4 * 50176 / 6 = 33450.67 -> "33451".
  deviations from 100352/3: -100352/3 (x2), +50176/3 (x4); variance =
  (2 * 100352**2 + 4 * 50176**2) / 9 / 6 = 50176**2 * 2 / 9, so
  std = 50176 * sqrt(2) / 3 = 23653.193... -> "23653.19".

File "b-run.json": 1 topic, 1 partition, 100 B (sorts first: smaller size).

* publishRate 2.0, 3.0 -> slots of width 1. min 2, max 3, mean 10 / 4 =
  2.5 -> half-even "2" (half-up would say 3); deviations +-0.5, variance
  0.25, std 0.5 -> "#.##" has no minimum integer digit: ".5".
* consumeRate 34.9, 2.9 -> 34, 2. 34 has 6 bits: slot 34..35 (width 2),
  median 35, so max = 35; min 2. mean = (2 * 35 + 2 * 2) / 4 = 18.5 ->
  half-even "18"; deviations +-16.5, std 16.5 -> "16.5".
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Bench

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = sorted((ROOT / "workloads").glob("*.yaml"))

HEADER = (
    "topics,partitions,message-size,producers-per-topic,consumers-per-topic,"
    "prod-rate-min,prod-rate-avg,prod-rate-std-dev,prod-rate-max,"
    "con-rate-min,con-rate-avg,con-rate-std-dev,con-rate-max,"
)
EXPECTED_CSV = (
    HEADER + "\n"
    "1,1,100,1,1,2,2,.5,3,2,18,16.5,35\n"
    "1,16,1024,1,1,47104,49493,965.44,51199,49152,33451,23653.19,51199\n"
)
CSV_NAME = re.compile(r"results-\d+\.csv")


def _result(
    size: int, topics: int, partitions: int, publish: list[float], consume: list[float]
) -> str:
    document = {
        "workload": "hand-written",
        "driver": "Redis",
        "messageSize": size,
        "topics": topics,
        "partitions": partitions,
        "producersPerTopic": 1,
        "consumersPerTopic": 1,
        "publishRate": publish,
        "publishErrorRate": [0.0] * len(publish),
        "consumeRate": consume,
        "backlog": [0] * len(consume),
    }
    return json.dumps(document, indent=2)


def _results_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    folder.mkdir()
    # "a" before "b" in file-name order, the reverse of the row order.
    (folder / "a-run.json").write_text(
        _result(1024, 1, 16, [50012.7, 49987.2, 48000.9], [0.0, 49990.5, 50001.0])
    )
    (folder / "b-run.json").write_text(_result(100, 1, 1, [2.0, 3.0], [34.9, 2.9]))
    # Neither of these is a result: a sidecar (not even an OMB shape) and
    # a file of another kind.
    (folder / "a-run.json.sidecar").write_text('{"schemaVersion": 1, "x": [')
    (folder / "notes.txt").write_text("not a result")
    return folder


# --------------------------------------------------------------------------
# bench validate


@pytest.mark.parametrize("path", WORKLOADS, ids=lambda p: p.name)
def test_every_workload_file_validates(bench: Bench, path: Path) -> None:
    status, out, err = bench("validate", str(path.relative_to(ROOT)))
    assert (status, err) == (0, "")
    assert out.count("\n") == 1
    assert out.startswith(f"workloads/{path.name}: ")


def test_validate_all_in_one_call_from_the_shell() -> None:
    """The installed entry point, as a user types it, over the whole folder."""
    paths = [str(p.relative_to(ROOT)) for p in WORKLOADS]
    done = subprocess.run(
        [sys.executable, "-m", "runner.cli", "validate", *paths],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == len(WORKLOADS)


def test_validate_line_shows_shape_rate_and_durations(bench: Bench) -> None:
    status, out, _ = bench(
        "validate",
        "workloads/1-topic-100-partitions-1kb-4p-4c-200k-backlog.yaml",
        "workloads/max-rate-1-topic-16-partitions-100b.yaml",
        "workloads/smoke.yaml",
    )
    assert status == 0
    backlog = (
        "workloads/1-topic-100-partitions-1kb-4p-4c-200k-backlog.yaml: "
        "'Backlog for 200k rate 4 producers and 4 consumers on 1 topic / 100 "
        "partition': 1 topic x 100 partitions, 1024 B, 200000 msg/s, "
        "warm-up 1m, test 5m, backlog 512 GB"
    )
    max_rate = (
        "workloads/max-rate-1-topic-16-partitions-100b.yaml: "
        "'Max rate 1 producer on 1 topic / 16 partitions': 1 topic x 16 "
        "partitions, 100 B, max-rate discovery, warm-up 1m, test 5m"
    )
    smoke = (
        "workloads/smoke.yaml: 'smoke / 1 topic / 4 partitions / 1Kb': "
        "1 topic x 4 partitions, 1024 B, 2000 msg/s, warm-up 2s, test 6s"
    )
    assert out.splitlines() == [backlog, max_rate, smoke]


def test_bad_workload_is_one_line_and_exit_2(bench: Bench, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    good = (ROOT / "workloads" / "smoke.yaml").read_text()
    bad.write_text(good.replace('"KEY_ROUND_ROBIN"', '"ROUND_ROBIN"'))
    status, out, err = bench("validate", str(bad), "workloads/smoke.yaml")
    assert status == 2
    # The bad file is reported and the good one after it is still checked.
    assert err.count("\n") == 1
    assert err.startswith(f"bench validate: error: {bad}: keyDistributor: ")
    assert "'ROUND_ROBIN' is not allowed" in err
    assert out.startswith("workloads/smoke.yaml: ")


def test_every_bad_file_gets_its_own_line(bench: Bench, tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    status, out, err = bench("validate", str(missing), str(empty))
    assert (status, out) == (2, "")
    lines = err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"bench validate: error: {missing}: ")
    assert lines[1].startswith(f"bench validate: error: {empty}: ")


# --------------------------------------------------------------------------
# bench csv


def test_csv_matches_the_hand_derived_table(bench: Bench, tmp_path: Path) -> None:
    folder = _results_dir(tmp_path)
    status, out, err = bench("csv", str(folder))
    assert (status, err) == (0, "")
    written = Path(out.strip())
    assert written.parent == folder
    assert CSV_NAME.fullmatch(written.name)
    assert written.read_bytes().decode() == EXPECTED_CSV


def test_csv_of_a_result_without_periods(bench: Bench, tmp_path: Path) -> None:
    # An empty histogram: Java's min non-zero is Long.MAX_VALUE, the rest 0.
    (tmp_path / "r.json").write_text(_result(1024, 2, 3, [], []))
    status, out, _ = bench("csv", str(tmp_path))
    assert status == 0
    long_max = str(2**63 - 1)
    assert Path(out.strip()).read_text() == (
        f"{HEADER}\n2,3,1024,1,1,{long_max},0,0,0,{long_max},0,0,0\n"
    )


def test_csv_keeps_file_order_for_equal_keys(bench: Bench, tmp_path: Path) -> None:
    # Same size, topics and partitions: rows follow the file names, as
    # Java's stable sort of a sorted directory listing leaves them.
    (tmp_path / "z.json").write_text(_result(100, 1, 1, [9.0], [9.0]))
    (tmp_path / "m.json").write_text(_result(100, 1, 1, [5.0], [5.0]))
    status, out, _ = bench("csv", str(tmp_path))
    assert status == 0
    rows = Path(out.strip()).read_text().splitlines()[1:]
    assert rows == ["1,1,100,1,1,5,5,0,5,5,5,0,5", "1,1,100,1,1,9,9,0,9,9,9,0,9"]


def _one_line_error(err: str) -> bool:
    return err.count("\n") == 1 and err.startswith("bench csv: error: ")


def test_csv_of_a_missing_folder(bench: Bench, tmp_path: Path) -> None:
    status, out, err = bench("csv", str(tmp_path / "nope"))
    assert (status, out) == (2, "")
    assert _one_line_error(err) and "no such folder" in err


def test_csv_of_a_file_instead_of_a_folder(bench: Bench, tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(_result(100, 1, 1, [1.0], [1.0]))
    status, _, err = bench("csv", str(path))
    assert status == 2 and _one_line_error(err) and "not a folder" in err


def test_csv_of_a_folder_with_only_sidecars(bench: Bench, tmp_path: Path) -> None:
    (tmp_path / "r.json.sidecar").write_text("{}")
    status, _, err = bench("csv", str(tmp_path))
    assert status == 2 and _one_line_error(err) and "no *.json file" in err
    assert list(tmp_path.glob("results-*.csv")) == []


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"{ not json", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"workload": "x", "topics": 1}', "missing keys"),
        (
            _result(100, 1, 1, [1.0], [1.0])
            .replace('"topics": 1', '"topics": "one"')
            .encode(),
            "topics: 'one' is not allowed; expected a whole number",
        ),
        (b"\xff\xfe{}", "not UTF-8"),
    ],
    ids=["syntax", "array", "missing-keys", "wrong-type", "not-utf-8"],
)
def test_csv_refuses_a_json_file_that_is_no_result(
    bench: Bench, tmp_path: Path, content: bytes, problem: str
) -> None:
    (tmp_path / "good.json").write_text(_result(100, 1, 1, [1.0], [1.0]))
    (tmp_path / "other.json").write_bytes(content)
    status, out, err = bench("csv", str(tmp_path))
    assert (status, out) == (2, "")
    assert _one_line_error(err)
    assert str(tmp_path / "other.json") in err and problem in err
    assert list(tmp_path.glob("results-*.csv")) == []


@pytest.mark.parametrize(
    ("rate", "problem"),
    [
        (16_777_216.0, "holds 0 to 16777215 msg/s"),
        # No rate is negative: refused when the file is read.
        (-1.0, "consumeRate[0]: -1.0 is not allowed; expected a number >= 0"),
    ],
)
def test_csv_refuses_a_rate_java_cannot_record(
    bench: Bench, tmp_path: Path, rate: float, problem: str
) -> None:
    # 2**24 - 1 is the last value the histogram's counts array reaches.
    (tmp_path / "r.json").write_text(_result(100, 1, 1, [16_777_215.9], [rate]))
    status, _, err = bench("csv", str(tmp_path))
    assert status == 2 and _one_line_error(err)
    assert "consumeRate" in err and problem in err
