"""Payload pool, shipped payload files and the three key distributors."""

from __future__ import annotations

import base64
import ctypes
import dataclasses
import importlib.util
import math
import os
import random
import re
import string
from pathlib import Path
from types import ModuleType

import pytest

from aioredismq.errors import WorkloadError
from runner.payloads import (
    KEY_COUNT,
    NoKeyDistributor,
    RandomNanoKeyDistributor,
    RoundRobinKeyDistributor,
    key_distributor,
    key_table,
    load_payloads,
)
from runner.workload import KeyDistributorType, Workload

REPO_ROOT = Path(__file__).resolve().parent.parent
PAYLOAD_DIR = REPO_ROOT / "payload"
BASE64URL = set(string.ascii_letters + string.digits + "-_")


def make_workload(**changes: object) -> Workload:
    base = Workload(
        source="w.yaml",
        file_base_name="w",
        name=None,
        topics=1,
        partitions_per_topic=1,
        key_distributor=KeyDistributorType.NO_KEY,
        message_size_bytes=100,
        use_randomized_payloads=True,
        random_bytes_ratio=0.5,
        randomized_payload_pool_size=7,
        payload_file=None,
        subscriptions_per_topic=1,
        producers_per_topic=1,
        consumer_per_subscription=1,
        producer_rate_per_s=10.0,
        consumer_backlog_size_gb=0,
        backlog_drain_ratio=1.0,
        test_duration_s=60.0,
        warmup_duration_s=0.0,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# Payload pool


@pytest.mark.parametrize(
    ("size_bytes", "ratio", "random_bytes"),
    [
        (100, 0.5, 50),
        (100, 0.333, 33),
        (1024, 0.999, 1022),
        (10, 1.0, 10),
        (10, 0.0, 0),
    ],
)
def test_randomized_pool_is_a_random_prefix_then_zeros(
    size_bytes: int, ratio: float, random_bytes: int
) -> None:
    workload = make_workload(message_size_bytes=size_bytes, random_bytes_ratio=ratio)

    pool = load_payloads(workload, rng=random.Random(7))

    twin = random.Random(7)
    zeros = bytes(size_bytes - random_bytes)
    assert pool == [twin.randbytes(random_bytes) + zeros for _ in range(7)]
    assert all(len(payload) == size_bytes for payload in pool)


def test_randomized_pool_differs_between_entries_by_default() -> None:
    workload = make_workload(
        message_size_bytes=64, random_bytes_ratio=1.0, randomized_payload_pool_size=5
    )

    pool = load_payloads(workload)

    assert len(pool) == 5
    assert len(set(pool)) == 5  # 512 random bits each: a repeat means no randomness


def test_payload_file_is_one_entry() -> None:
    path = PAYLOAD_DIR / "payload-400b.data"
    workload = make_workload(
        use_randomized_payloads=False, message_size_bytes=400, payload_file=path
    )

    assert load_payloads(workload) == [path.read_bytes()]


def test_payload_file_changed_since_loading_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.data"
    path.write_bytes(b"x" * 99)
    workload = make_workload(
        use_randomized_payloads=False, message_size_bytes=100, payload_file=path
    )

    with pytest.raises(
        WorkloadError,
        match="^"
        + re.escape(
            f"w.yaml: payloadFile: '{path}' is not allowed; it now holds 99 bytes; "
            "expected exactly messageSize (100) bytes"
        )
        + "$",
    ):
        load_payloads(workload)


def test_payload_file_gone_since_loading_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "gone.data"
    workload = make_workload(
        use_randomized_payloads=False, message_size_bytes=100, payload_file=path
    )

    with pytest.raises(
        WorkloadError,
        match="^"
        + re.escape(f"w.yaml: payloadFile: '{path}' is not allowed; cannot read it (")
        + r"[^)]+\); expected a readable file$",
    ):
        load_payloads(workload)


# ---------------------------------------------------------------------------
# Shipped payload files

HEX = set(b"0123456789abcdefABCDEF")
ALNUM = set((string.ascii_letters + string.digits).encode())
PAYLOAD_FILES = [
    ("payload-100b.data", 100, HEX),
    ("payload-200b.data", 200, HEX),
    ("payload-400b.data", 400, HEX),
    ("payload-1Kb.data", 1024, HEX),
    ("payload-2Kb.data", 2048, ALNUM),
    ("payload-4Kb.data", 4096, ALNUM),
]


@pytest.mark.parametrize(("file_name", "size_bytes", "alphabet"), PAYLOAD_FILES)
def test_payload_file_size_and_characters(
    file_name: str, size_bytes: int, alphabet: set[int]
) -> None:
    content = (PAYLOAD_DIR / file_name).read_bytes()

    assert len(content) == size_bytes
    # A subset of the alphabet is ASCII and rules out a trailing newline.
    assert set(content) <= alphabet


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_payloads", PAYLOAD_DIR / "make_payloads.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_payload_files_are_what_the_generator_writes(
    generator: ModuleType,
) -> None:
    assert sorted(generator.PAYLOADS) == sorted(name for name, _, _ in PAYLOAD_FILES)
    for file_name in generator.PAYLOADS:
        assert (PAYLOAD_DIR / file_name).read_bytes() == generator.payload_bytes(
            file_name
        ), file_name
    assert generator.main(["--check"]) == 0


# ---------------------------------------------------------------------------
# Key table


def test_key_table_holds_ten_thousand_base64url_keys() -> None:
    table = key_table()

    assert KEY_COUNT == 10_000
    assert len(table) == 10_000
    assert len(set(table)) == 10_000  # 56 random bits each: no repeats
    for key in table:
        assert len(key) == 10 and set(key) <= BASE64URL, key
        assert len(base64.urlsafe_b64decode(key + "==")) == 7


def test_key_table_is_built_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    first = key_table()
    assert key_table() is first

    # A forked worker sees a new process id and must not share the parent's keys.
    real_pid = os.getpid()
    monkeypatch.setattr(os, "getpid", lambda: real_pid + 1)
    in_child = key_table()
    assert in_child is not first
    assert set(in_child).isdisjoint(first)


# ---------------------------------------------------------------------------
# Distributors


def test_factory_builds_each_kind() -> None:
    assert type(key_distributor(KeyDistributorType.NO_KEY)) is NoKeyDistributor
    assert (
        type(key_distributor(KeyDistributorType.KEY_ROUND_ROBIN))
        is RoundRobinKeyDistributor
    )
    assert (
        type(key_distributor(KeyDistributorType.RANDOM_NANO))
        is RandomNanoKeyDistributor
    )


def test_no_key_gives_none() -> None:
    distributor = key_distributor(KeyDistributorType.NO_KEY)

    assert [distributor.next_key() for _ in range(3)] == [None, None, None]
    assert distributor.next_keys(50) is None


def test_round_robin_starts_at_index_one_and_wraps() -> None:
    distributor = RoundRobinKeyDistributor()
    table = key_table()

    keys = [distributor.next_key() for _ in range(KEY_COUNT + 2)]

    assert keys[0] == table[1]
    assert keys[KEY_COUNT - 2] == table[KEY_COUNT - 1]
    assert keys[KEY_COUNT - 1] == table[0]
    assert keys == table[1:] + table[:3]


def small_table() -> list[str]:
    return [f"k{i}" for i in range(5)]


def test_round_robin_order_on_a_small_table() -> None:
    distributor = RoundRobinKeyDistributor(small_table())

    keys = [distributor.next_key() for _ in range(7)]

    assert keys == ["k1", "k2", "k3", "k4", "k0", "k1", "k2"]


@pytest.mark.parametrize("chunk_sizes", [[1, 2, 3], [4, 4, 4], [5], [12, 1], [0, 3, 9]])
def test_round_robin_bulk_matches_one_by_one(chunk_sizes: list[int]) -> None:
    one_by_one = RoundRobinKeyDistributor(small_table())
    bulk = RoundRobinKeyDistributor(small_table())

    expected = [one_by_one.next_key() for _ in range(sum(chunk_sizes))]
    got: list[str] = []
    for size in chunk_sizes:
        chunk = bulk.next_keys(size)
        assert len(chunk) == size
        got += chunk

    assert got == expected
    # Both must now continue from the same place too.
    assert bulk.next_key() == one_by_one.next_key()


def test_round_robin_bulk_and_single_calls_share_one_position() -> None:
    distributor = RoundRobinKeyDistributor(small_table())

    assert distributor.next_keys(3) == ["k1", "k2", "k3"]
    assert distributor.next_key() == "k4"
    assert distributor.next_keys(3) == ["k0", "k1", "k2"]


def java_random_nano_index(nanos: int) -> int:
    """OMB's `abs((int) System.nanoTime() % 10000)`, spelt out step by step."""
    as_int = ctypes.c_int32(nanos).value  # (int) keeps the low 32 bits, signed
    remainder = int(math.fmod(as_int, 10_000))  # Java %: sign of the dividend
    return abs(remainder)


CLOCK_VALUES = [
    0,
    1,
    10_001,
    2**31 - 1,
    2**31,  # becomes Integer.MIN_VALUE
    2**31 + 5,
    2**32 - 1,  # becomes -1
    2**40 + 123_456,
    987_654_321_987_654,
]


def test_random_nano_follows_java_int_cast_and_remainder() -> None:
    table = [f"k{i}" for i in range(KEY_COUNT)]
    ticks = iter(CLOCK_VALUES)
    distributor = RandomNanoKeyDistributor(table, clock_ns=lambda: next(ticks))

    keys = [distributor.next_key() for _ in CLOCK_VALUES]

    expected = [f"k{java_random_nano_index(v)}" for v in CLOCK_VALUES]
    assert keys == expected
    # Pin a few by hand so the reference function cannot drift with the code.
    assert expected[:3] == ["k0", "k1", "k1"]
    assert expected[4] == "k3648"  # abs(-2147483648 % 10000) = 3648
    assert expected[6] == "k1"  # (int) 0xFFFFFFFF = -1


def test_random_nano_bulk_matches_one_by_one() -> None:
    table = [f"k{i}" for i in range(KEY_COUNT)]
    single_ticks = iter(CLOCK_VALUES)
    bulk_ticks = iter(CLOCK_VALUES)
    single = RandomNanoKeyDistributor(table, clock_ns=lambda: next(single_ticks))
    bulk = RandomNanoKeyDistributor(table, clock_ns=lambda: next(bulk_ticks))

    assert bulk.next_keys(len(CLOCK_VALUES)) == [
        single.next_key() for _ in CLOCK_VALUES
    ]


def test_random_nano_keys_vary_with_the_real_clock() -> None:
    distributor = RandomNanoKeyDistributor()

    keys = distributor.next_keys(200)
    keys += [distributor.next_key() for _ in range(200)]

    assert set(keys) <= set(key_table())
    assert len(set(keys)) > 1
