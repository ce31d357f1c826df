"""What producers send: the payload pool and the message keys.

The pool is either the workload's payload file (one entry) or, with
`useRandomizedPayloads`, `randomizedPayloadPoolSize` generated payloads whose
first `floor(messageSize * randomBytesRatio)` bytes are random and the rest
zero, so the ratio controls how well a compressing broker could squeeze them.

Keys come from a table of 10,000 random keys built once per process, as in
OMB, where every worker has its own table. Each sender holds its own
distributor; none of them is safe to share between threads.
"""

from __future__ import annotations

import abc
import base64
import os
import random
import time
from collections.abc import Callable
from typing import Final

from aioredismq.errors import WorkloadError
from runner.files import read_input
from runner.workload import KeyDistributorType, Workload

__all__ = [
    "KEY_COUNT",
    "KeyDistributor",
    "NoKeyDistributor",
    "RandomNanoKeyDistributor",
    "RoundRobinKeyDistributor",
    "key_distributor",
    "key_table",
    "load_payloads",
]

#: Keys in the per-process table.
KEY_COUNT: Final = 10_000
_KEY_RAW_BYTES: Final = 7  # 56 bits: ten base64url characters once unpadded


def load_payloads(
    workload: Workload, *, rng: random.Random | None = None
) -> list[bytes]:
    """The payloads to send, each exactly `workload.message_size_bytes` long.

    `rng` makes a randomized pool reproducible in tests; by default the random
    bytes come from the operating system.
    """
    size_bytes = workload.message_size_bytes
    if workload.use_randomized_payloads:
        rng = rng or random.SystemRandom()
        # Java's (int) cast truncates; for the non-negative product that is
        # the floor OMB documents.
        random_bytes = int(size_bytes * workload.random_bytes_ratio)
        zeros = bytes(size_bytes - random_bytes)
        return [
            rng.randbytes(random_bytes) + zeros
            for _ in range(workload.randomized_payload_pool_size)
        ]
    return [_read_payload_file(workload)]


def _read_payload_file(workload: Workload) -> bytes:
    path = workload.payload_file
    if path is None:
        raise WorkloadError(
            workload.source,
            "payloadFile",
            None,
            "expected a payload file when useRandomizedPayloads is false",
        )
    try:
        payload = read_input(path)
    except OSError as err:
        raise WorkloadError(
            workload.source,
            "payloadFile",
            str(path),
            f"cannot read it ({err.strerror}); expected a readable file",
        ) from err
    # The file was checked when the workload was loaded, but it may have
    # changed since; a payload of the wrong size would skew every byte rate.
    if len(payload) != workload.message_size_bytes:
        raise WorkloadError(
            workload.source,
            "payloadFile",
            str(path),
            f"it now holds {len(payload)} bytes; expected exactly messageSize "
            f"({workload.message_size_bytes}) bytes",
        )
    return payload


# ---------------------------------------------------------------------------
# Keys

_table: list[str] = []
_table_pid = -1


def key_table() -> list[str]:
    """This process's 10,000 keys, built on first use.

    The owning process id is remembered so that a worker forked after the
    table was built makes its own, as separate OMB worker JVMs would.
    """
    global _table, _table_pid
    if _table_pid != os.getpid():
        raw = os.urandom(KEY_COUNT * _KEY_RAW_BYTES)
        # 7 bytes encode to 12 base64 characters, the last 2 of them "=".
        _table = [
            base64.urlsafe_b64encode(raw[at : at + _KEY_RAW_BYTES])
            .decode("ascii")
            .rstrip("=")
            for at in range(0, len(raw), _KEY_RAW_BYTES)
        ]
        _table_pid = os.getpid()
    return _table


class KeyDistributor(abc.ABC):
    """Chooses the key of each message a sender produces."""

    @abc.abstractmethod
    def next_key(self) -> str | None:
        """The next message's key, or None for a message without one."""

    @abc.abstractmethod
    def next_keys(self, count: int) -> list[str] | None:
        """The next `count` keys at once, or None when messages carry no key."""


class NoKeyDistributor(KeyDistributor):
    """NO_KEY: messages carry no key at all."""

    def next_key(self) -> None:
        return None

    def next_keys(self, count: int) -> None:
        return None


class RoundRobinKeyDistributor(KeyDistributor):
    """KEY_ROUND_ROBIN: the table in order, starting at index 1 as OMB does.

    OMB increments its index before reading, so the first key is table[1]
    and table[0] comes right after table[9999].
    """

    def __init__(self, table: list[str] | None = None) -> None:
        keys = key_table() if table is None else table
        self._count = len(keys)
        # Two copies back to back turn any run that wraps into one slice.
        self._ring = keys + keys
        self._index = 0

    def next_key(self) -> str:
        self._index = (self._index + 1) % self._count
        return self._ring[self._index]

    def next_keys(self, count: int) -> list[str]:
        start = (self._index + 1) % self._count
        self._index = (self._index + count) % self._count
        if count <= self._count:
            return self._ring[start : start + count]
        keys: list[str] = []
        while count > 0:
            take = min(count, self._count)
            keys += self._ring[start : start + take]
            start = (start + take) % self._count
            count -= take
        return keys


class RandomNanoKeyDistributor(KeyDistributor):
    """RANDOM_NANO: the key indexed by the clock's nanoseconds.

    OMB computes `abs((int) System.nanoTime() % 10000)`: the clock is cut to
    a signed 32-bit int, Java's `%` keeps the dividend's sign, and abs then
    drops it, which is the same as abs(int32) mod 10000.
    """

    def __init__(
        self,
        table: list[str] | None = None,
        clock_ns: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        self._table = key_table() if table is None else table
        self._clock_ns = clock_ns

    def next_key(self) -> str:
        return self._table[abs(_to_int32(self._clock_ns())) % len(self._table)]

    def next_keys(self, count: int) -> list[str]:
        # One clock read per key is the point of this distributor; binding the
        # names locally keeps each step to a few bytecodes.
        table, clock_ns, modulus = self._table, self._clock_ns, len(self._table)
        return [
            table[abs(((clock_ns() + _TWO_POW_31) & _MASK_32) - _TWO_POW_31) % modulus]
            for _ in range(count)
        ]


_TWO_POW_31: Final = 1 << 31
_MASK_32: Final = (1 << 32) - 1


def _to_int32(value: int) -> int:
    """Java's `(int)` cast of a long: keep the low 32 bits, read them signed."""
    return ((value + _TWO_POW_31) & _MASK_32) - _TWO_POW_31


def key_distributor(kind: KeyDistributorType) -> KeyDistributor:
    """A new distributor of the given kind; build one per sender."""
    # Every kind is named, none is a fall-through default: an OMB version once
    # gave NO_KEY workloads round-robin keys through exactly such a default.
    match kind:
        case KeyDistributorType.NO_KEY:
            return NoKeyDistributor()
        case KeyDistributorType.KEY_ROUND_ROBIN:
            return RoundRobinKeyDistributor()
        case KeyDistributorType.RANDOM_NANO:
            return RandomNanoKeyDistributor()
    raise ValueError(f"unknown key distributor {kind!r}")
