"""Workload files: OMB's YAML format, read and checked before any load starts.

A workload file is read exactly as OMB reads it (same keys, same defaults,
unknown keys ignored), with two differences:

* Values OMB would accept and then act on strangely are refused up front with a
  `WorkloadError` naming the file, the key, the value and what is allowed: an
  unknown `keyDistributor` (OMB quietly treats it as NO_KEY), counts that are
  negative or not integers, a payload file that is missing or whose size is
  not `messageSize`, `producerRate: 0` combined with a backlog, and a key
  given twice (whose last value would otherwise win without a word).
* Two extension keys, `testDurationSeconds` and `warmupDurationSeconds`, take
  precedence over the minute fields when present, so a workload can finish in
  seconds. OMB's own tool ignores them and uses the minute fields.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeGuard

import yaml

from aioredismq.errors import ConfigError, WorkloadError, check_misspelt_keys
from aioredismq.topic import MAX_PARTITIONS
from runner.files import read_input
from runner.yamlfiles import load_yaml

__all__ = [
    "KeyDistributorType",
    "MAX_MESSAGE_SIZE_BYTES",
    "Workload",
    "load_workload",
    "load_workloads",
    "parse_duration",
]

logger = logging.getLogger(__name__)

#: Redis refuses bulk strings above 512 MiB (`proto-max-bulk-len`'s default),
#: so a larger message could never be sent.
MAX_MESSAGE_SIZE_BYTES: Final = 512 * 1024 * 1024

#: Streams one run may make (topics x partitionsPerTopic): a topic's own
#: limit on partitions, and far above OMB's largest workloads. Every stream
#: costs memory in the workers before the first message is sent.
MAX_STREAMS: Final = MAX_PARTITIONS
#: Consumers of one run (topics x subscriptions x consumers): each holds a
#: connection for its blocking reads, and servers accept 10,000 clients by
#: default (`maxclients`).
MAX_CONSUMERS: Final = 10_000
#: Producers of one run (topics x producersPerTopic).
MAX_PRODUCERS: Final = 100_000

_SECONDS_PER_MINUTE: Final = 60.0


class _Missing:
    """Stands for the value of a required key that is not there."""

    def __repr__(self) -> str:
        return "no value (the key is missing)"


_MISSING: Final = _Missing()


class KeyDistributorType(enum.StrEnum):
    """How each message's key is chosen (OMB's names, used as-is in YAML)."""

    NO_KEY = "NO_KEY"
    KEY_ROUND_ROBIN = "KEY_ROUND_ROBIN"
    RANDOM_NANO = "RANDOM_NANO"


_DISTRIBUTOR_NAMES: Final = ", ".join(kind.value for kind in KeyDistributorType)


class _Unset(enum.Enum):
    """Marks an argument left out, since None is itself a meaningful value."""

    KEEP = enum.auto()


_KEEP: Final = _Unset.KEEP


@dataclass(frozen=True, slots=True)
class Workload:
    """One workload file, checked, with OMB's defaults filled in."""

    source: str
    """The path of the YAML file as it was given."""
    file_base_name: str
    """The file's name without its last extension; result file names use it."""
    name: str | None
    topics: int
    partitions_per_topic: int
    key_distributor: KeyDistributorType
    message_size_bytes: int
    use_randomized_payloads: bool
    random_bytes_ratio: float
    randomized_payload_pool_size: int
    payload_file: Path | None
    """Absolute path of the payload; None when payloads are randomized."""
    subscriptions_per_topic: int
    producers_per_topic: int
    consumer_per_subscription: int
    producer_rate_per_s: float
    """Total target rate over all producers; 0 asks for max-rate discovery."""
    consumer_backlog_size_gb: float
    """Whole GB in a file, as OMB's long; a fraction where code builds one."""
    backlog_drain_ratio: float
    test_duration_s: float | None
    """Length of the measured phase; None runs until stopped (OMB's 0)."""
    warmup_duration_s: float

    def with_durations(
        self,
        *,
        test_s: float | None | _Unset = _KEEP,
        warmup_s: float | _Unset = _KEEP,
    ) -> Workload:
        """A copy with the durations given replaced (command-line overrides).

        Leave an argument out to keep the file's value. `test_s=None` runs
        until stopped; otherwise it must be > 0, because a measured phase of
        zero would produce no result at all.
        """
        test_duration_s = self.test_duration_s
        if test_s is None:
            test_duration_s = None
        elif test_s is not _KEEP:
            if not _is_number(test_s) or not test_s > 0:
                raise ValueError(f"test_s must be a finite number > 0, got {test_s!r}")
            test_duration_s = float(test_s)

        warmup_duration_s = self.warmup_duration_s
        if warmup_s is not _KEEP:
            if not _is_number(warmup_s) or not warmup_s >= 0:
                raise ValueError(
                    f"warmup_s must be a finite number >= 0, got {warmup_s!r}"
                )
            warmup_duration_s = float(warmup_s)
        return dataclasses.replace(
            self, test_duration_s=test_duration_s, warmup_duration_s=warmup_duration_s
        )


def load_workload(path: str | Path) -> Workload:
    """Read and check one workload file; relative payload paths use the CWD."""
    source = str(path)
    document = _read_yaml(source, Path(path))
    return _build(source, Path(path), document)


def load_workloads(paths: Iterable[str | Path]) -> list[Workload]:
    """Read every file, then order them as OMB runs them: by file base name.

    OMB keys workloads by base name, so two different files sharing one would
    silently collapse into one run; that is refused here instead. The same
    file given twice runs once, as in OMB.
    """
    by_base_name: dict[str, Workload] = {}
    resolved_by_base_name: dict[str, Path] = {}
    for path in paths:
        workload = load_workload(path)
        resolved = Path(path).resolve()
        earlier = resolved_by_base_name.get(workload.file_base_name)
        if earlier is not None and earlier != resolved:
            raise WorkloadError(
                workload.source,
                None,
                workload.file_base_name,
                f"another workload file given, {earlier}, has the same base name "
                "and result file names would collide; rename one of them",
            )
        by_base_name[workload.file_base_name] = workload
        resolved_by_base_name[workload.file_base_name] = resolved
    # Java compares strings by UTF-16 code unit; big-endian UTF-16 bytes sort
    # the same way, which keeps the order identical for any file name.
    ordered = sorted(by_base_name, key=lambda base: base.encode("utf-16-be"))
    return [by_base_name[base] for base in ordered]


_DURATION_RE: Final = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*")
_SECONDS_PER_UNIT: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(
    text: str, flag: str = "duration", *, allow_zero: bool = True
) -> float:
    """Seconds in a command-line duration such as `500ms`, `30s`, `2m`, `1h`, `90`.

    A bare number is seconds. `flag` names the option in the error message.
    """
    match = _DURATION_RE.fullmatch(text)
    allowed = (
        "expected a number with an optional unit ms, s, m or h "
        "(e.g. 500ms, 30s, 2m, 1h; a bare number is seconds)"
    )
    if match is None:
        raise ConfigError(flag, None, text, allowed)
    number, unit = match.groups()
    seconds = float(number) * _SECONDS_PER_UNIT[unit or "s"]
    if not allow_zero and seconds == 0:
        raise ConfigError(
            flag, None, text, "expected a duration > 0 (e.g. 500ms, 30s, 2m, 1h)"
        )
    return seconds


# ---------------------------------------------------------------------------
# Reading and checking


def _read_yaml(source: str, path: Path) -> Mapping[str, Any]:
    resolved = path.resolve()
    expected = "expected the path of an existing workload YAML file"
    if not resolved.exists():
        raise WorkloadError(source, None, str(resolved), "no such file; " + expected)
    try:
        raw = read_input(resolved)
    except OSError as err:
        raise WorkloadError(
            source, None, str(resolved), f"cannot read it ({err.strerror}); {expected}"
        ) from err
    try:
        document = load_yaml(raw)
    except yaml.YAMLError as err:
        problem = _yaml_problem(err)
        raise WorkloadError(source, None, problem, "expected valid YAML") from err
    if not isinstance(document, dict):
        kind = "an empty document" if document is None else type(document).__name__
        raise WorkloadError(
            source, None, kind, "expected a mapping of workload keys at the top level"
        )
    return document


def _yaml_problem(err: yaml.YAMLError) -> str:
    """The parser's complaint and where, in one line (its own text spans several)."""
    if isinstance(err, yaml.MarkedYAMLError) and err.problem_mark is not None:
        mark = err.problem_mark
        return f"{err.problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(err).split())


# Every key OMB's Workload class has, plus our two extension keys.
_KNOWN_KEYS: Final = frozenset(
    {
        "name",
        "topics",
        "partitionsPerTopic",
        "keyDistributor",
        "messageSize",
        "useRandomizedPayloads",
        "randomBytesRatio",
        "randomizedPayloadPoolSize",
        "payloadFile",
        "subscriptionsPerTopic",
        "producersPerTopic",
        "consumerPerSubscription",
        "producerRate",
        "consumerBacklogSizeGB",
        "backlogDrainRatio",
        "testDurationMinutes",
        "warmupDurationMinutes",
        "testDurationSeconds",
        "warmupDurationSeconds",
    }
)


def _is_number(value: object) -> TypeGuard[float]:
    """A finite int or float; bool is excluded although Python counts it as int."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


# Counts a run cannot do without: OMB's default of 0 would create nothing.
_REQUIRED_COUNTS: Final = (
    "topics",
    "partitionsPerTopic",
    "subscriptionsPerTopic",
    "producersPerTopic",
    "consumerPerSubscription",
)


class _Fields:
    """Typed reads of one document's keys, each failing with a WorkloadError."""

    def __init__(self, source: str, document: Mapping[str, Any]) -> None:
        self.source = source
        self.document = document

    def fail(self, key: str, value: object, allowed: str) -> WorkloadError:
        return WorkloadError(self.source, key, value, allowed)

    def not_a_number(
        self, key: str, value: object, allowed: str, *, integer: bool = False
    ) -> WorkloadError:
        """A number key's error, which says so when the value is a number
        that YAML read as a string."""
        if isinstance(value, str):
            allowed += _string_number_hint(value, integer=integer)
        return self.fail(key, value, allowed)

    def integer(
        self, key: str, default: int, minimum: int, maximum: int | None = None
    ) -> int:
        # A default below the minimum means the key is required.
        value = self.document.get(key, default if default >= minimum else _MISSING)
        # bool is a subclass of int in Python, but `topics: true` is a mistake.
        if isinstance(value, int) and not isinstance(value, bool):
            if value >= minimum and (maximum is None or value <= maximum):
                return value
        allowed = f"expected an integer from {minimum} to {maximum}"
        if maximum is None:
            allowed = f"expected an integer >= {minimum}"
        raise self.not_a_number(key, value, allowed, integer=True)

    def ratio(self, key: str, default: float) -> float:
        value = self.document.get(key, default)
        if _is_number(value) and 0 <= value <= 1:
            return float(value)
        raise self.not_a_number(key, value, "expected a number from 0 to 1")

    def non_negative(self, key: str, default: float, allowed: str) -> float:
        value = self.document.get(key, default)
        if _is_number(value) and value >= 0:
            return float(value)
        raise self.not_a_number(key, value, allowed)

    def positive(self, key: str) -> float:
        value = self.document.get(key)
        if _is_number(value) and value > 0:
            return float(value)
        raise self.not_a_number(key, value, "expected a finite number > 0")

    def boolean(self, key: str, default: bool) -> bool:
        value = self.document.get(key, default)
        if isinstance(value, bool):
            return value
        raise self.fail(key, value, "expected true or false")

    def optional_text(self, key: str, allowed: str) -> str | None:
        value = self.document.get(key)
        if value is None or isinstance(value, str):
            return value
        raise self.fail(key, value, allowed)


_NUMBER_RE: Final = re.compile(r"([-+]?)(\d*)(\.?)(\d*)(?:[eE]([-+]?)(\d+))?")


def _string_number_hint(text: str, *, integer: bool) -> str:
    """What to write instead when `text`, a string, was meant as a number.

    YAML 1.1, which PyYAML reads, takes `1e-9` and `5e3` for text: a number
    with an exponent needs a dot and a signed exponent there (`1.0e-9`).
    """
    match = _NUMBER_RE.fullmatch(text.strip())
    if match is None or not (match[2] or match[4]):
        return ""
    unquoted = yaml.safe_load(text)
    if _is_number(unquoted) and (isinstance(unquoted, int) or not integer):
        return "; it is a string (in quotes): write it without quotes"
    sign, whole, _, fraction, exponent_sign, exponent = match.groups()
    if integer or exponent is None:
        return ""
    written = f"{sign}{whole or '0'}.{fraction or '0'}e{exponent_sign or '+'}{exponent}"
    return (
        f"; YAML reads {text} as a string, not a number (it wants a dot and a "
        f"signed exponent): write it as {written}"
    )


#: What a run builds, the counts that multiply to how many, and the limit.
_TOTALS: Final = (
    ("streams", ("topics", "partitionsPerTopic"), MAX_STREAMS),
    ("producers", ("topics", "producersPerTopic"), MAX_PRODUCERS),
    (
        "consumers",
        ("topics", "subscriptionsPerTopic", "consumerPerSubscription"),
        MAX_CONSUMERS,
    ),
)


def _check_totals(fields: _Fields, counts: Mapping[str, int]) -> None:
    """What the counts add up to for a whole run must stay buildable; the
    largest of the counts multiplied is the one named."""
    for what, keys, limit in _TOTALS:
        total = math.prod(counts[key] for key in keys)
        if total > limit:
            blamed = max(keys, key=lambda key: counts[key])
            product = " x ".join(f"{key} {counts[key]:,}" for key in keys)
            raise fields.fail(
                blamed,
                counts[blamed],
                f"{product} make {total:,} {what}; expected at most {limit:,} in all",
            )


def _build(source: str, path: Path, document: Mapping[str, Any]) -> Workload:
    check_misspelt_keys(source, document, _KNOWN_KEYS, WorkloadError)
    for key in document:
        if key not in _KNOWN_KEYS:
            # OMB ignores unknown keys, so must we; a misspelt key silently
            # taking its default is worth a line in the log though.
            logger.warning("%s: ignoring unknown workload key %r", source, key)
    fields = _Fields(source, document)

    # Checks of one key each come first: they need nothing but the document.
    name = fields.optional_text("name", "expected a string")
    counts = {key: fields.integer(key, 0, minimum=1) for key in _REQUIRED_COUNTS}
    _check_totals(fields, counts)
    key_distributor = _key_distributor(fields)
    message_size_bytes = fields.integer(
        "messageSize", 0, minimum=1, maximum=MAX_MESSAGE_SIZE_BYTES
    )
    use_randomized = fields.boolean("useRandomizedPayloads", False)
    random_bytes_ratio = fields.ratio("randomBytesRatio", 0.0)
    pool_size = fields.integer("randomizedPayloadPoolSize", 0, minimum=0)
    producer_rate_per_s = fields.non_negative(
        "producerRate", 0.0, "expected a finite number >= 0 (0 = find the max rate)"
    )
    backlog_gb = fields.integer("consumerBacklogSizeGB", 0, minimum=0)
    drain_ratio = fields.ratio("backlogDrainRatio", 1.0)
    test_duration_s, warmup_duration_s = _durations(fields)

    # Then what depends on several keys, and last the payload file on disk.
    if use_randomized and pool_size < 1:
        raise fields.fail(
            "randomizedPayloadPoolSize",
            pool_size,
            "expected an integer >= 1 when useRandomizedPayloads is true",
        )
    if backlog_gb > 0 and producer_rate_per_s == 0:
        raise fields.fail(
            "consumerBacklogSizeGB",
            backlog_gb,
            "a backlog needs a fixed rate but producerRate is 0 (max-rate "
            "discovery); expected 0, or set producerRate > 0",
        )
    # OMB ignores payloadFile when payloads are randomized, so it is not read.
    payload_file = None if use_randomized else _payload_file(fields, message_size_bytes)

    return Workload(
        source=source,
        file_base_name=_base_name(path),
        name=name,
        topics=counts["topics"],
        partitions_per_topic=counts["partitionsPerTopic"],
        key_distributor=key_distributor,
        message_size_bytes=message_size_bytes,
        use_randomized_payloads=use_randomized,
        random_bytes_ratio=random_bytes_ratio,
        randomized_payload_pool_size=pool_size,
        payload_file=payload_file,
        subscriptions_per_topic=counts["subscriptionsPerTopic"],
        producers_per_topic=counts["producersPerTopic"],
        consumer_per_subscription=counts["consumerPerSubscription"],
        producer_rate_per_s=producer_rate_per_s,
        consumer_backlog_size_gb=backlog_gb,
        backlog_drain_ratio=drain_ratio,
        test_duration_s=test_duration_s,
        warmup_duration_s=warmup_duration_s,
    )


def _base_name(path: Path) -> str:
    """The file name up to its last dot, the key OMB sorts and names results by."""
    base, dot, _extension = path.name.rpartition(".")
    return base if dot else path.name


def _key_distributor(fields: _Fields) -> KeyDistributorType:
    value = fields.document.get("keyDistributor", KeyDistributorType.NO_KEY.value)
    if isinstance(value, str) and value in KeyDistributorType.__members__:
        return KeyDistributorType(value)
    raise fields.fail("keyDistributor", value, f"expected one of {_DISTRIBUTOR_NAMES}")


def _payload_file(fields: _Fields, message_size_bytes: int) -> Path:
    wanted = f"expected a file of exactly messageSize ({message_size_bytes}) bytes"
    given = fields.optional_text("payloadFile", "expected a path string; " + wanted)
    if given is None:
        raise fields.fail(
            "payloadFile", None, wanted + ", or useRandomizedPayloads: true"
        )
    # OMB opens the path relative to the process's working directory, not to
    # the workload file, so the same rule applies here; the error shows the
    # absolute path so a wrong working directory is obvious.
    resolved = Path(given).resolve()
    if not resolved.is_file():
        raise fields.fail(
            "payloadFile",
            given,
            f"no file at {resolved} (relative paths start from the current "
            f"directory); {wanted}",
        )
    size_bytes = resolved.stat().st_size
    if size_bytes != message_size_bytes:
        raise fields.fail(
            "payloadFile", given, f"{resolved} holds {size_bytes} bytes; {wanted}"
        )
    return resolved


def _durations(fields: _Fields) -> tuple[float | None, float]:
    test_minutes = fields.integer("testDurationMinutes", 0, minimum=0)
    warmup_minutes = fields.integer("warmupDurationMinutes", 1, minimum=0)
    # The extension keys win when present; the minute fields are still checked
    # because OMB's own tool would read them from the same file.
    if "testDurationSeconds" in fields.document:
        test_duration_s: float | None = fields.positive("testDurationSeconds")
    elif test_minutes == 0:
        test_duration_s = None  # OMB's 0: run until stopped
    else:
        test_duration_s = test_minutes * _SECONDS_PER_MINUTE

    if "warmupDurationSeconds" in fields.document:
        warmup_duration_s = fields.non_negative(
            "warmupDurationSeconds", 0.0, "expected a finite number >= 0"
        )
    else:
        warmup_duration_s = warmup_minutes * _SECONDS_PER_MINUTE
    return test_duration_s, warmup_duration_s
