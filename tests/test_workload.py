"""Workload files: OMB's defaults, our extension keys, and every refusal."""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from aioredismq.errors import ConfigError, WorkloadError
from runner.workload import (
    KeyDistributorType,
    Workload,
    load_workload,
    load_workloads,
    parse_duration,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
ABSENT = object()
# A number in quotes is a string to YAML, and the error says so.
IN_QUOTES = "; it is a string (in quotes): write it without quotes"

# The smallest document a run accepts; tests add, change or drop keys.
MINIMAL: dict[str, Any] = {
    "topics": 1,
    "partitionsPerTopic": 1,
    "messageSize": 1024,
    "payloadFile": "p1k.data",
    "subscriptionsPerTopic": 1,
    "producersPerTopic": 1,
    "consumerPerSubscription": 1,
}


def exactly(message: str) -> str:
    """An anchored pattern matching `message` and nothing else."""
    return "^" + re.escape(message) + "$"


@pytest.fixture(autouse=True)
def in_tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Payload paths are relative to the working directory, as in OMB.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p1k.data").write_bytes(b"x" * 1024)
    return tmp_path


def write_workload(
    tmp_path: Path, file_name: str = "w.yaml", /, **changes: Any
) -> Path:
    document = {**MINIMAL, **changes}
    document = {k: v for k, v in document.items() if v is not ABSENT}
    path = tmp_path / file_name
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


# ---------------------------------------------------------------------------
# Defaults and values


def test_omb_defaults_apply_to_absent_keys(tmp_path: Path) -> None:
    path = write_workload(tmp_path)
    workload = load_workload(path)

    assert workload.name is None
    assert workload.key_distributor is KeyDistributorType.NO_KEY
    assert workload.use_randomized_payloads is False
    assert workload.random_bytes_ratio == 0.0
    assert workload.randomized_payload_pool_size == 0
    assert workload.producer_rate_per_s == 0.0
    assert workload.consumer_backlog_size_gb == 0
    assert workload.backlog_drain_ratio == 1.0
    assert workload.test_duration_s is None  # OMB's 0: run until stopped
    assert workload.warmup_duration_s == 60.0
    assert workload.payload_file == tmp_path.resolve() / "p1k.data"
    assert workload.source == str(path)
    assert workload.file_base_name == "w"


def test_every_key_is_read(tmp_path: Path) -> None:
    path = write_workload(
        tmp_path,
        name="all keys",
        topics=3,
        partitionsPerTopic=16,
        keyDistributor="RANDOM_NANO",
        messageSize=100,
        useRandomizedPayloads=True,
        randomBytesRatio=0.25,
        randomizedPayloadPoolSize=7,
        payloadFile="not/read/when/randomized.data",
        subscriptionsPerTopic=2,
        producersPerTopic=4,
        consumerPerSubscription=5,
        producerRate=12345,
        consumerBacklogSizeGB=2,
        backlogDrainRatio=0.5,
        testDurationMinutes=3,
        warmupDurationMinutes=2,
    )
    workload = load_workload(path)

    assert dataclasses.asdict(workload) == {
        "source": str(path),
        "file_base_name": "w",
        "name": "all keys",
        "topics": 3,
        "partitions_per_topic": 16,
        "key_distributor": KeyDistributorType.RANDOM_NANO,
        "message_size_bytes": 100,
        "use_randomized_payloads": True,
        "random_bytes_ratio": 0.25,
        "randomized_payload_pool_size": 7,
        "payload_file": None,
        "subscriptions_per_topic": 2,
        "producers_per_topic": 4,
        "consumer_per_subscription": 5,
        "producer_rate_per_s": 12345.0,
        "consumer_backlog_size_gb": 2,
        "backlog_drain_ratio": 0.5,
        "test_duration_s": 180.0,
        "warmup_duration_s": 120.0,
    }


def test_unknown_keys_are_ignored_but_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A key of OMB's workload generator, far from any workload key.
    path = write_workload(tmp_path, nameFormat="x-{topics}")
    with caplog.at_level(logging.WARNING, logger="runner.workload"):
        load_workload(path)

    assert caplog.messages == [f"{path}: ignoring unknown workload key 'nameFormat'"]


@pytest.mark.parametrize(
    ("changes", "test_s", "warmup_s"),
    [
        ({"testDurationMinutes": 15}, 900.0, 60.0),
        ({"testDurationMinutes": 2, "warmupDurationMinutes": 0}, 120.0, 0.0),
        ({"testDurationSeconds": 6, "warmupDurationSeconds": 2}, 6.0, 2.0),
        ({"testDurationSeconds": 0.5}, 0.5, 60.0),
        ({"warmupDurationSeconds": 0}, None, 0.0),
        (
            {
                "testDurationMinutes": 1,
                "warmupDurationMinutes": 3,
                "testDurationSeconds": 6,
                "warmupDurationSeconds": 2.5,
            },
            6.0,
            2.5,
        ),
    ],
)
def test_durations_in_minutes_and_seconds_with_seconds_winning(
    tmp_path: Path, changes: dict[str, Any], test_s: float | None, warmup_s: float
) -> None:
    workload = load_workload(write_workload(tmp_path, **changes))

    assert workload.test_duration_s == test_s
    assert workload.warmup_duration_s == warmup_s


def test_shipped_workloads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO_ROOT)
    sixteen, smoke = load_workloads(
        ["workloads/smoke.yaml", "workloads/1-topic-16-partitions.yaml"]
    )

    assert sixteen.name == "1 topic / 16 partitions / 1Kb"
    assert (sixteen.topics, sixteen.partitions_per_topic) == (1, 16)
    assert sixteen.message_size_bytes == 1024
    assert sixteen.payload_file == REPO_ROOT / "payload" / "payload-1Kb.data"
    assert sixteen.producer_rate_per_s == 50000.0
    assert (sixteen.test_duration_s, sixteen.warmup_duration_s) == (900.0, 60.0)

    assert smoke.file_base_name == "smoke"
    assert smoke.partitions_per_topic == 4
    assert smoke.key_distributor is KeyDistributorType.KEY_ROUND_ROBIN
    assert smoke.producer_rate_per_s == 2000.0
    assert (smoke.test_duration_s, smoke.warmup_duration_s) == (6.0, 2.0)


# ---------------------------------------------------------------------------
# Run order


def test_workloads_run_in_order_of_file_base_name(tmp_path: Path) -> None:
    names = ["b.yaml", "a.yml", "Z.yaml", "10-x.yaml", "9-x.yaml", "a.b.yaml"]
    paths = [write_workload(tmp_path, name) for name in names]

    ordered = [w.file_base_name for w in load_workloads(paths)]

    # Java string order: digits, then capitals, then lower case, char by char.
    assert ordered == ["10-x", "9-x", "Z", "a", "a.b", "b"]


def test_same_file_twice_runs_once(tmp_path: Path) -> None:
    path = write_workload(tmp_path)

    assert len(load_workloads([path, str(path)])) == 1


def test_two_files_with_one_base_name_are_refused(tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    first = write_workload(tmp_path, "x.yaml")
    second = write_workload(tmp_path, "other/x.yml")

    with pytest.raises(
        WorkloadError,
        match=exactly(
            f"{second}: 'x' is not allowed; another workload file given, {first}, "
            "has the same base name and result file names would collide; "
            "rename one of them"
        ),
    ):
        load_workloads([first, second])


def test_file_without_extension_keeps_its_whole_name(tmp_path: Path) -> None:
    assert load_workload(write_workload(tmp_path, "plain")).file_base_name == "plain"


# ---------------------------------------------------------------------------
# Refusals of single keys

COUNTS = [
    "topics",
    "partitionsPerTopic",
    "subscriptionsPerTopic",
    "producersPerTopic",
    "consumerPerSubscription",
]


@pytest.mark.parametrize("key", COUNTS)
@pytest.mark.parametrize("value", [0, -1, 1.5, True, "3", None])
def test_counts_must_be_integers_of_at_least_one(
    tmp_path: Path, key: str, value: object
) -> None:
    path = write_workload(tmp_path, **{key: value})
    allowed = "expected an integer >= 1" + (IN_QUOTES if value == "3" else "")

    with pytest.raises(
        WorkloadError,
        match=exactly(f"{path}: {key}: {value!r} is not allowed; {allowed}"),
    ):
        load_workload(path)


@pytest.mark.parametrize("key", COUNTS)
def test_counts_are_required(tmp_path: Path, key: str) -> None:
    path = write_workload(tmp_path, **{key: ABSENT})

    with pytest.raises(
        WorkloadError,
        match=exactly(
            f"{path}: {key}: no value (the key is missing) is not allowed; "
            "expected an integer >= 1"
        ),
    ):
        load_workload(path)


@pytest.mark.parametrize(
    ("changes", "key", "value", "allowed"),
    [
        (
            {"topics": 1001, "partitionsPerTopic": 1000},
            "topics",
            1001,
            "topics 1,001 x partitionsPerTopic 1,000 make 1,001,000 streams; "
            "expected at most 1,000,000 in all",
        ),
        (
            {"topics": 10, "producersPerTopic": 10001},
            "producersPerTopic",
            10001,
            "topics 10 x producersPerTopic 10,001 make 100,010 producers; "
            "expected at most 100,000 in all",
        ),
        (
            {"topics": 2, "subscriptionsPerTopic": 50, "consumerPerSubscription": 101},
            "consumerPerSubscription",
            101,
            "topics 2 x subscriptionsPerTopic 50 x consumerPerSubscription 101 "
            "make 10,100 consumers; expected at most 10,000 in all",
        ),
        (
            {"topics": 1, "subscriptionsPerTopic": 20000},
            "subscriptionsPerTopic",
            20000,
            "topics 1 x subscriptionsPerTopic 20,000 x consumerPerSubscription 1 "
            "make 20,000 consumers; expected at most 10,000 in all",
        ),
    ],
)
def test_a_run_too_big_to_build_is_refused_at_load(
    tmp_path: Path, changes: dict[str, int], key: str, value: int, allowed: str
) -> None:
    path = write_workload(tmp_path, **changes)
    with pytest.raises(
        WorkloadError,
        match=exactly(f"{path}: {key}: {value} is not allowed; {allowed}"),
    ):
        load_workload(path)


def test_the_largest_run_allowed_loads(tmp_path: Path) -> None:
    path = write_workload(tmp_path, topics=1000, partitionsPerTopic=1000)
    assert load_workload(path).topics == 1000


KEYS = "expected one of NO_KEY, KEY_ROUND_ROBIN, RANDOM_NANO"
RATE = "expected a finite number >= 0 (0 = find the max rate)"
BAD_VALUES = [
    ("messageSize", 0, "expected an integer from 1 to 536870912"),
    ("messageSize", 536870913, "expected an integer from 1 to 536870912"),
    ("messageSize", "1Kb", "expected an integer from 1 to 536870912"),
    ("keyDistributor", "ROUND_ROBIN", KEYS),
    ("keyDistributor", "no_key", KEYS),
    ("keyDistributor", None, KEYS),
    ("keyDistributor", 1, KEYS),
    ("useRandomizedPayloads", "sure", "expected true or false"),
    ("useRandomizedPayloads", 1, "expected true or false"),
    ("randomBytesRatio", 1.5, "expected a number from 0 to 1"),
    ("randomBytesRatio", -0.1, "expected a number from 0 to 1"),
    ("randomBytesRatio", float("nan"), "expected a number from 0 to 1"),
    ("randomizedPayloadPoolSize", -1, "expected an integer >= 0"),
    ("producerRate", -1, RATE),
    ("producerRate", float("inf"), RATE),
    ("producerRate", "fast", RATE),
    ("producerRate", False, RATE),
    ("consumerBacklogSizeGB", -1, "expected an integer >= 0"),
    ("consumerBacklogSizeGB", 0.5, "expected an integer >= 0"),
    ("backlogDrainRatio", 2, "expected a number from 0 to 1"),
    ("backlogDrainRatio", -1, "expected a number from 0 to 1"),
    ("testDurationMinutes", -1, "expected an integer >= 0"),
    ("testDurationMinutes", 1.5, "expected an integer >= 0"),
    ("warmupDurationMinutes", -1, "expected an integer >= 0"),
    ("warmupDurationMinutes", "1", "expected an integer >= 0" + IN_QUOTES),
    ("topics", "1e2", "expected an integer >= 1"),
    ("testDurationSeconds", 0, "expected a finite number > 0"),
    ("testDurationSeconds", -6, "expected a finite number > 0"),
    ("testDurationSeconds", "6", "expected a finite number > 0" + IN_QUOTES),
    ("testDurationSeconds", "0.5", "expected a finite number > 0" + IN_QUOTES),
    ("producerRate", "fast", RATE),
    ("testDurationSeconds", None, "expected a finite number > 0"),
    ("warmupDurationSeconds", -1, "expected a finite number >= 0"),
    ("warmupDurationSeconds", True, "expected a finite number >= 0"),
    ("name", ["a", "b"], "expected a string"),
    (
        "payloadFile",
        5,
        "expected a path string; expected a file of exactly messageSize (1024) bytes",
    ),
]


@pytest.mark.parametrize(("key", "value", "allowed"), BAD_VALUES)
def test_bad_values_name_file_key_value_and_what_is_allowed(
    tmp_path: Path, key: str, value: object, allowed: str
) -> None:
    path = write_workload(tmp_path, **{key: value})

    expected = f"{path}: {key}: {value!r} is not allowed; {allowed}"
    with pytest.raises(WorkloadError, match=exactly(expected)) as caught:
        load_workload(path)
    assert (caught.value.source, caught.value.field) == (str(path), key)


# ---------------------------------------------------------------------------
# Refusals that involve several keys or the disk


def test_randomized_payloads_need_a_pool(tmp_path: Path) -> None:
    path = write_workload(tmp_path, useRandomizedPayloads=True, payloadFile=ABSENT)

    with pytest.raises(
        WorkloadError,
        match=exactly(
            f"{path}: randomizedPayloadPoolSize: 0 is not allowed; expected an "
            "integer >= 1 when useRandomizedPayloads is true"
        ),
    ):
        load_workload(path)


def test_payload_file_is_required_without_randomized_payloads(tmp_path: Path) -> None:
    path = write_workload(tmp_path, payloadFile=ABSENT)

    with pytest.raises(
        WorkloadError,
        match=exactly(
            f"{path}: payloadFile: None is not allowed; expected a file of exactly "
            "messageSize (1024) bytes, or useRandomizedPayloads: true"
        ),
    ):
        load_workload(path)


def test_backlog_with_max_rate_discovery_is_refused(tmp_path: Path) -> None:
    path = write_workload(tmp_path, producerRate=0, consumerBacklogSizeGB=10)

    with pytest.raises(
        WorkloadError,
        match=exactly(
            f"{path}: consumerBacklogSizeGB: 10 is not allowed; a backlog needs a "
            "fixed rate but producerRate is 0 (max-rate discovery); expected 0, or "
            "set producerRate > 0"
        ),
    ):
        load_workload(path)


def test_backlog_with_a_fixed_rate_is_accepted(tmp_path: Path) -> None:
    path = write_workload(tmp_path, producerRate=100, consumerBacklogSizeGB=10)

    assert load_workload(path).consumer_backlog_size_gb == 10


def test_missing_workload_file_shows_the_resolved_path(tmp_path: Path) -> None:
    with pytest.raises(
        WorkloadError,
        match=exactly(
            f"nope.yaml: '{tmp_path.resolve() / 'nope.yaml'}' is not allowed; no such "
            "file; expected the path of an existing workload YAML file"
        ),
    ):
        load_workload("nope.yaml")


def test_a_directory_is_not_a_workload_file(tmp_path: Path) -> None:
    with pytest.raises(
        WorkloadError,
        match="^"
        + re.escape(f"{tmp_path}: '{tmp_path.resolve()}' is not allowed; ")
        + r"cannot read it \(.+\); expected the path of an existing workload YAML "
        + "file$",
    ):
        load_workload(tmp_path)


@pytest.mark.parametrize(
    ("key", "text", "written"),
    [
        ("testDurationSeconds", "1e-9", "1.0e-9"),
        ("warmupDurationSeconds", "-1E3", "-1.0e+3"),
        ("producerRate", "5e3", "5.0e+3"),
        ("backlogDrainRatio", "1.0e0", "1.0e+0"),
    ],
)
def test_a_number_yaml_reads_as_a_string_is_named_as_such(
    tmp_path: Path, key: str, text: str, written: str
) -> None:
    """YAML 1.1 reads a number with an exponent but no dot or no sign in it
    as a string; the error says how to write it instead."""
    path = write_workload(tmp_path, **{key: ABSENT})
    with path.open("a") as file:
        file.write(f"{key}: {text}\n")

    with pytest.raises(WorkloadError) as caught:
        load_workload(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {key}: {text!r} is not allowed; expected ")
    assert message.endswith(
        f"; YAML reads {text} as a string, not a number (it wants a dot and a "
        f"signed exponent): write it as {written}"
    )
    # Written that way, it is a number.
    path.write_text(path.read_text().replace(f"{key}: {text}", f"{key}: {written}"))
    assert yaml.safe_load(path.read_text())[key] == float(text)


def test_a_key_given_twice_is_refused(tmp_path: Path) -> None:
    """PyYAML would keep the last value; the rate would change unnoticed."""
    path = write_workload(tmp_path, producerRate=1000)
    with path.open("a") as file:
        file.write("producerRate: 50000\n")
    lines = path.read_text().splitlines()
    first = lines.index("producerRate: 1000") + 1

    with pytest.raises(
        WorkloadError,
        match=exactly(
            f"{path}: \"duplicate key 'producerRate' on lines {first} and "
            f'{len(lines)}" is not allowed; expected valid YAML'
        ),
    ):
        load_workload(path)


def test_a_merged_key_may_be_overridden(tmp_path: Path) -> None:
    """YAML's merge key copies a mapping in; a key after it overrides one of
    the copied ones, which is no repetition."""
    path = tmp_path / "merged.yaml"
    shared = yaml.safe_dump({"shared": MINIMAL}, sort_keys=False)
    path.write_text(
        shared.replace("shared:", "shared: &shared", 1) + "<<: *shared\ntopics: 3\n"
    )

    assert load_workload(path).topics == 3


def test_text_that_is_not_yaml(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("topics: [1\npartitionsPerTopic: 2\n")

    with pytest.raises(
        WorkloadError,
        match=exactly(
            f"{path}: \"expected ',' or ']', but got ':' (line 2, column 19)\" is "
            "not allowed; expected valid YAML"
        ),
    ):
        load_workload(path)


def test_bytes_that_are_not_text(tmp_path: Path) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"topics: \xff\xfe\n")

    with pytest.raises(
        WorkloadError,
        match=exactly(
            f"{path}: 'unacceptable character #x00ff: invalid start byte in "
            '"<byte string>", position 8\' is not allowed; expected valid YAML'
        ),
    ):
        load_workload(path)


@pytest.mark.parametrize(
    ("text", "kind"),
    [("- topics: 1\n", "list"), ("just words\n", "str"), ("", "an empty document")],
)
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(text)

    with pytest.raises(
        WorkloadError,
        match=exactly(
            f"{path}: {kind!r} is not allowed; expected a mapping of workload keys "
            "at the top level"
        ),
    ):
        load_workload(path)


# ---------------------------------------------------------------------------
# B23: the keys-check workload and its variants

B23 = """\
name: keys-check
topics: 1
partitionsPerTopic: 4
keyDistributor: "{distributor}"
messageSize: 1024
payloadFile: "{payload}"
subscriptionsPerTopic: 1
consumerPerSubscription: 1
producersPerTopic: 1
producerRate: 100
testDurationMinutes: 1
"""


def write_b23(
    tmp_path: Path,
    distributor: str = "NO_KEY",
    payload: str = "payload/payload-1Kb.data",
) -> Path:
    path = tmp_path / "keys-check.yaml"
    path.write_text(B23.format(distributor=distributor, payload=payload))
    return path


@pytest.mark.parametrize("distributor", ["NO_KEY", "KEY_ROUND_ROBIN", "RANDOM_NANO"])
def test_b23_workload_loads_with_each_distributor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, distributor: str
) -> None:
    path = write_b23(tmp_path, distributor)
    monkeypatch.chdir(REPO_ROOT)
    workload = load_workload(path)

    assert workload.key_distributor is KeyDistributorType[distributor]
    assert workload.payload_file == REPO_ROOT / "payload" / "payload-1Kb.data"
    assert workload.producer_rate_per_s == 100.0
    assert workload.test_duration_s == 60.0


def test_b23_invalid_distributor_lists_the_allowed_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_b23(tmp_path, "ROUND_ROBIN")
    monkeypatch.chdir(REPO_ROOT)

    with pytest.raises(
        WorkloadError,
        match=exactly(
            f"{path}: keyDistributor: 'ROUND_ROBIN' is not allowed; expected one of "
            "NO_KEY, KEY_ROUND_ROBIN, RANDOM_NANO"
        ),
    ):
        load_workload(path)


def test_b23_payload_file_smaller_than_message_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_b23(tmp_path, payload="payload/payload-100b.data")
    monkeypatch.chdir(REPO_ROOT)
    resolved = REPO_ROOT / "payload" / "payload-100b.data"

    with pytest.raises(
        WorkloadError,
        match=exactly(
            f"{path}: payloadFile: 'payload/payload-100b.data' is not allowed; "
            f"{resolved} holds 100 bytes; expected a file of exactly messageSize "
            "(1024) bytes"
        ),
    ):
        load_workload(path)


def test_b23_missing_payload_file_shows_the_resolved_path(tmp_path: Path) -> None:
    # The working directory is tmp_path, which has no payload/ folder: the
    # path must be resolved against it, not against the repository.
    path = write_b23(tmp_path)
    resolved = tmp_path.resolve() / "payload" / "payload-1Kb.data"

    with pytest.raises(
        WorkloadError,
        match=exactly(
            f"{path}: payloadFile: 'payload/payload-1Kb.data' is not allowed; no file "
            f"at {resolved} (relative paths start from the current directory); "
            "expected a file of exactly messageSize (1024) bytes"
        ),
    ):
        load_workload(path)


# ---------------------------------------------------------------------------
# Command-line durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("500ms", 0.5),
        ("90", 90.0),
        ("1.5m", 90.0),
        (".5s", 0.5),
        (" 10 s ", 10.0),
        ("0", 0.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "-5s", "5x", "1m30s", "inf", "nan", "5 S"])
def test_parse_duration_refuses_bad_text(text: str) -> None:
    with pytest.raises(
        ConfigError,
        match=exactly(
            f"--test-duration: {text!r} is not allowed; expected a number with an "
            "optional unit ms, s, m or h (e.g. 500ms, 30s, 2m, 1h; a bare number is "
            "seconds)"
        ),
    ) as caught:
        parse_duration(text, "--test-duration")
    assert not isinstance(caught.value, WorkloadError)


def test_parse_duration_can_refuse_zero() -> None:
    with pytest.raises(
        ConfigError,
        match=r"^--test-duration: '0s' is not allowed; expected a duration > 0 "
        r"\(e\.g\. 500ms, 30s, 2m, 1h\)$",
    ):
        parse_duration("0s", "--test-duration", allow_zero=False)


def test_with_durations_returns_a_changed_copy(tmp_path: Path) -> None:
    original = load_workload(write_workload(tmp_path, testDurationMinutes=15))

    both = original.with_durations(test_s=6, warmup_s=0)
    only_test = original.with_durations(test_s=2.5)
    forever = original.with_durations(test_s=None)

    assert (original.test_duration_s, original.warmup_duration_s) == (900.0, 60.0)
    assert (both.test_duration_s, both.warmup_duration_s) == (6.0, 0.0)
    assert (only_test.test_duration_s, only_test.warmup_duration_s) == (2.5, 60.0)
    assert forever.test_duration_s is None
    assert original.with_durations() == original
    restored = dataclasses.replace(both, test_duration_s=900.0, warmup_duration_s=60.0)
    assert restored == original


@pytest.mark.parametrize(
    "changes",
    [{"test_s": 0}, {"test_s": -1}, {"test_s": float("inf")}, {"warmup_s": -0.5}],
)
def test_with_durations_refuses_impossible_values(
    tmp_path: Path, changes: dict[str, float]
) -> None:
    workload = load_workload(write_workload(tmp_path))

    with pytest.raises(ValueError, match=r"^(test|warmup)_s must be a finite number"):
        workload.with_durations(**changes)


def test_workload_is_frozen(tmp_path: Path) -> None:
    workload: Workload = load_workload(write_workload(tmp_path))

    with pytest.raises(dataclasses.FrozenInstanceError):
        workload.topics = 2  # type: ignore[misc]


def test_a_key_one_typo_away_from_a_known_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text(
        "name: t\ntopics: 1\npartitionsPerTopic: 1\nmessageSize: 10\n"
        "useRandomizedPayloads: true\nrandomizedPayloadPoolSize: 1\n"
        "subscriptionsPerTopic: 1\nconsumerPerSubscription: 1\n"
        "producersPerTopic: 1\nproducerRat: 2000\n"
    )
    with pytest.raises(
        WorkloadError,
        match=r"producerRat: 'producerRat' is not "
        r"allowed; unknown key; did you mean producerRate\?$",
    ):
        load_workload(path)
