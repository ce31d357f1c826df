"""Reading result files for reports and comparisons: OMB's JSON and our sidecar.

A result file is OMB's `TestResult` JSON, written by `bench run` or by OMB's
Java tool. `bench run` also writes `<result>.sidecar` beside it with what OMB
has no field for (server, workers, settings, counters, start and end times);
results from OMB itself have none, so everything that reads a sidecar must
do without one.

A result that cannot be read, lacks REQUIRED_KEYS, or holds a value of the
wrong type or range stops the command (ConfigError naming the file, the key
and the value). A sidecar is extra: when it is unreadable, or one of its
facts is of the wrong type, that part is left out with a warning.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import reprlib
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final

from aioredismq.errors import ConfigError, ResultValueError
from runner.files import read_input
from runner.result import RESULT_KEYS, TestResult, result_from_json

__all__ = [
    "EXPECTED",
    "REQUIRED_KEYS",
    "SIDECAR_SUFFIX",
    "ResultRun",
    "load_run",
    "load_runs",
    "mean",
    "read_result_file",
]

logger = logging.getLogger(__name__)

#: What `bench run` appends to a result's path for its sidecar.
SIDECAR_SUFFIX = ".sidecar"

EXPECTED = "expected an OMB result file (the JSON `bench run` or OMB writes)"

#: The keys without which `bench report` and `bench compare` refuse a file:
#: every OMB result has them, and a JSON file without them is something else.
REQUIRED_KEYS: Final = ("workload", "driver", "publishRate", "consumeRate")

# Each TestResult attribute's JSON key: the schema lists both in one order.
_KEY_OF: Final = dict(
    zip(
        (item.name for item in fields(TestResult) if item.name != "unknown"),
        RESULT_KEYS,
        strict=True,
    )
)


@dataclass(frozen=True, slots=True)
class ResultRun:
    """One result file, its sidecar if there is one, and how to name it.

    `keys` are the OMB keys the file really has: a key it lacks leaves its
    TestResult field at the default (0, empty), which is no value at all.
    """

    path: Path
    result: TestResult
    sidecar: dict[str, Any] | None
    keys: frozenset[str] = frozenset(RESULT_KEYS)

    def has(self, attribute: str) -> bool:
        """Whether the file has the key of a TestResult attribute."""
        return _KEY_OF[attribute] in self.keys

    @property
    def started_at(self) -> str | None:
        """ISO time the run started, from the sidecar; None without one."""
        if self.sidecar is None:
            return None
        value = self.sidecar.get("startedAt")
        return value if isinstance(value, str) else None

    @property
    def label(self) -> str:
        """Driver and start time (file name when the start is unknown)."""
        when = self.started_at
        if when is not None:
            return f"{self.result.driver} @ {when[:19].replace('T', ' ')}"
        return f"{self.result.driver} ({self.path.name})"


def mean(values: Sequence[float]) -> float:
    """The arithmetic mean, finite for finite values of any size (a plain
    sum of large ones overflows: statistics.fmean raises OverflowError)."""
    try:
        return statistics.fmean(values)
    except OverflowError:
        count = len(values)
        return math.fsum(value / count for value in values)


def read_result_file(path: Path, required_keys: Iterable[str] = ()) -> TestResult:
    """Parse one OMB result file; ConfigError names the file and the fault."""
    return _read_result(path, required_keys)[0]


def _read_result(
    path: Path, required_keys: Iterable[str]
) -> tuple[TestResult, frozenset[str]]:
    source = str(path)
    try:
        text = read_input(path).decode("utf-8")
    except FileNotFoundError as err:
        raise ConfigError(source, None, path.name, "no such file; " + EXPECTED) from err
    except OSError as err:
        raise ConfigError(
            source, None, path.name, f"cannot read it ({err.strerror}); {EXPECTED}"
        ) from err
    except UnicodeDecodeError as err:
        raise ConfigError(
            source, None, path.name, "not UTF-8 text; " + EXPECTED
        ) from err
    try:
        document = json.loads(text)
    except ValueError as err:
        raise ConfigError(
            source, None, str(err), "not valid JSON; " + EXPECTED
        ) from err
    if not isinstance(document, dict):
        kind = type(document).__name__
        raise ConfigError(source, None, kind, "not a JSON object; " + EXPECTED)
    missing = [key for key in required_keys if key not in document]
    if missing:
        hint = ""
        if path.name.endswith(SIDECAR_SUFFIX):
            hint = " (this is a sidecar; give the result file beside it)"
        raise ConfigError(
            source, None, ", ".join(missing), f"missing keys; {EXPECTED}{hint}"
        )
    try:
        result = result_from_json(document)
    except ResultValueError as err:
        raise ConfigError(source, err.key, err.value, err.expected) from err
    return result, frozenset(document)


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    sidecar = Path(str(path) + SIDECAR_SUFFIX)
    try:
        document = json.loads(read_input(sidecar).decode("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        # The result itself is intact; a report can go on without the extras.
        logger.warning("ignoring %s: %s", sidecar, err)
        return None
    if not isinstance(document, dict):
        logger.warning("ignoring %s: not a JSON object", sidecar)
        return None
    faults: list[_Fault] = []
    kept = _checked(_SIDECAR, document, "", faults)
    for fault in faults:
        ignored = "it" if fault.ignored == fault.field else f"all of {fault.ignored}"
        logger.warning(
            "%s: %s: %s is not allowed; %s; ignoring %s",
            sidecar,
            fault.field,
            reprlib.repr(fault.value),
            fault.expected,
            ignored,
        )
    return kept if isinstance(kept, dict) else None


# --------------------------------------------------------------------------
# Sidecar facts of the wrong type
#
# Readers take the facts they use from a sidecar (the period, the start
# time, the rates a max-rate discovery chose) as the types `bench run`
# writes. A fact of another type (a hand-edited file, a writer's bug) is
# left out with a warning, and the rest of the sidecar is still used. Keys
# not listed here pass as they are: the settings table shows them as text.


@dataclass(frozen=True, slots=True)
class _Value:
    accepts: Callable[[Any], bool]
    expected: str


@dataclass(frozen=True, slots=True)
class _Object:
    known: Mapping[str, _Shape]
    #: The shape of every value whose key is not in `known`; None: any.
    others: _Shape | None = None


@dataclass(frozen=True, slots=True)
class _List:
    #: The shape of every item; None: any. One bad item drops the list,
    #: whose meaning (a rate history) a gap would change.
    items: _Shape | None = None


_Shape = _Value | _Object | _List


@dataclass(frozen=True, slots=True)
class _Fault:
    field: str
    value: object
    expected: str
    ignored: str  # the field left out for it


def _real(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _iso_time(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


# NaN passes as "no value"; readers skip it.
_NOT_NEGATIVE: Final = _Value(
    lambda v: _real(v) and not v < 0, "expected a number >= 0"
)
_NOT_NEGATIVE_OR_NULL: Final = _Value(
    lambda v: v is None or (_real(v) and not v < 0), "expected a number >= 0 or null"
)
_POSITIVE: Final = _Value(
    lambda v: _real(v) and math.isfinite(v) and v > 0, "expected a number > 0"
)
_COUNT: Final = _Value(
    lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
    "expected a whole number >= 0",
)
_TEXT: Final = _Value(lambda v: isinstance(v, str), "expected a string")
_TEXT_OR_NULL: Final = _Value(
    lambda v: v is None or isinstance(v, str), "expected a string or null"
)
_TIME: Final = _Value(_iso_time, "expected an ISO 8601 time")
_COUNTS: Final = _Object({}, _COUNT)

#: What `bench run` writes, as far as its types matter.
_SIDECAR: Final = _Object(
    {
        "schemaVersion": _COUNT,
        "workloadFile": _TEXT_OR_NULL,
        "driverFile": _TEXT_OR_NULL,
        "workload": _Object(
            {
                "name": _TEXT_OR_NULL,
                "testDurationSeconds": _NOT_NEGATIVE,
                "warmupDurationSeconds": _NOT_NEGATIVE,
                "producerRate": _NOT_NEGATIVE,
                "messageSize": _COUNT,
            }
        ),
        "driver": _Object({"name": _TEXT, "config": _Object({})}),
        "server": _Object({}),
        "workers": _List(),
        "runSettings": _Object(
            {"periodSeconds": _POSITIVE, "drainTimeoutSeconds": _NOT_NEGATIVE}
        ),
        "counters": _COUNTS,
        "chosenRates": _List(
            _Object({"atSeconds": _NOT_NEGATIVE, "rate": _NOT_NEGATIVE})
        ),
        "measuredFromSeconds": _NOT_NEGATIVE_OR_NULL,
        "backlog": _Object({}),
        "overflowSamples": _COUNTS,
        "negativeSamples": _COUNTS,
        "startedAt": _TIME,
        "finishedAt": _TIME,
        "environment": _Object({}),
    }
)

_BAD: Final = object()  # the value is left out


def _checked(shape: _Shape, value: Any, where: str, faults: list[_Fault]) -> Any:
    """`value` without its faulty parts (recorded in `faults`), or `_BAD`."""
    if isinstance(shape, _Value):
        if shape.accepts(value):
            return value
        faults.append(_Fault(where, value, shape.expected, where))
        return _BAD
    if isinstance(shape, _List):
        if not isinstance(value, list):
            faults.append(_Fault(where, value, "expected a list", where))
            return _BAD
        if shape.items is None:
            return value
        inner: list[_Fault] = []
        items = [
            _checked(shape.items, item, f"{where}[{index}]", inner)
            for index, item in enumerate(value)
        ]
        if inner:
            faults += [_Fault(f.field, f.value, f.expected, where) for f in inner]
            return _BAD
        return items
    if not isinstance(value, dict):
        faults.append(_Fault(where or "(top)", value, "expected an object", where))
        return _BAD
    kept = {}
    for key, item in value.items():
        item_shape = shape.known.get(key, shape.others)
        if item_shape is not None:
            item = _checked(
                item_shape, item, f"{where}.{key}" if where else key, faults
            )
        if item is not _BAD:
            kept[key] = item
    return kept


def load_run(path: str | Path) -> ResultRun:
    """A result file and its sidecar (None when there is none or it is unreadable).

    The file must have REQUIRED_KEYS. Sidecar facts of the wrong type are
    left out, each with a warning naming the file and the field.
    """
    path = Path(path)
    result, keys = _read_result(path, REQUIRED_KEYS)
    return ResultRun(path, result, _read_sidecar(path), keys)


def load_runs(paths: Sequence[str | Path]) -> list[ResultRun]:
    """Every file in order; the first bad one stops with its ConfigError."""
    return [load_run(path) for path in paths]
