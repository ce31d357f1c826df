"""OMB's result file: the `TestResult` fields, their numbers, their JSON text.

The file must read the same to OMB's own tools as one Java wrote, so:

* keys and their order are those of OMB's `TestResult.java` (Jackson writes
  public fields in declaration order);
* numbers come from `runner.histograms.JavaStats`, i.e. Java HdrHistogram
  2.1.12's arithmetic, in OMB's units: publish and end-to-end latency in ms
  (us / 1000.0, doubles), publish delay in us (double average, integer
  percentiles and maximum);
* the text is Jackson's default pretty printer: `"key" : value`, arrays
  inline `[ 1.0, 2.0 ]`, maps one entry a line, doubles by Java's
  `Double.toString`, no trailing newline.

Anything OMB does not define (overflow counters, environment, settings) goes
in a sidecar file, never here: OMB's CSV reader rejects unknown keys.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final

from hdrh.histogram import HdrHistogram

from aioredismq.errors import ResultValueError
from runner.histograms import JavaStats, java_double_str

__all__ = [
    "PERCENTILES",
    "RESULT_KEYS",
    "TestResult",
    "add_aggregates",
    "add_period",
    "append_period_latencies",
    "append_period_rates",
    "dumps_result",
    "load_result",
    "loads_result",
    "result_from_json",
]

#: OMB's percentile columns: key suffix and the percentile asked of HdrHistogram.
PERCENTILES: tuple[tuple[str, float], ...] = (
    ("50pct", 50.0),
    ("75pct", 75.0),
    ("95pct", 95.0),
    ("99pct", 99.0),
    ("999pct", 99.9),
    ("9999pct", 99.99),
)

# JSON kinds: how a field is written and how a loaded value is coerced,
# keyed by the field's annotation.
_STR, _INT, _DOUBLE = "str", "int", "float"
_DOUBLES, _INTS = "list[float]", "list[int]"
_MAP_DOUBLE, _MAP_INT = "dict[float, float]", "dict[float, int]"
_KINDS = {_STR, _INT, _DOUBLE, _DOUBLES, _INTS, _MAP_DOUBLE, _MAP_INT}


@dataclass
class TestResult:
    """One OMB result file. Field order is OMB's `TestResult.java` order.

    Each field's JSON key is its name in camelCase (`publish_latency_50pct`
    is `publishLatency50pct`), except `message_size_bytes` (`messageSize`).
    Units follow OMB: rates in msg/s (errors/s), backlog in messages,
    `*publish_latency_*` and `*end_to_end_*` in ms, `*publish_delay_*` in us.
    Quantile maps are keyed by percentile (a float; written Java-style).
    `unknown` keeps keys a loaded file had that OMB's class lacks (newer OMB
    versions add some); they are never written back.
    """

    __test__ = False  # not a pytest test class, despite OMB's name

    workload: str = ""
    driver: str = ""
    message_size_bytes: int = 0
    topics: int = 0
    partitions: int = 0
    producers_per_topic: int = 0
    consumers_per_topic: int = 0

    publish_rate: list[float] = field(default_factory=list)
    publish_error_rate: list[float] = field(default_factory=list)
    consume_rate: list[float] = field(default_factory=list)
    backlog: list[int] = field(default_factory=list)

    publish_latency_avg: list[float] = field(default_factory=list)
    publish_latency_50pct: list[float] = field(default_factory=list)
    publish_latency_75pct: list[float] = field(default_factory=list)
    publish_latency_95pct: list[float] = field(default_factory=list)
    publish_latency_99pct: list[float] = field(default_factory=list)
    publish_latency_999pct: list[float] = field(default_factory=list)
    publish_latency_9999pct: list[float] = field(default_factory=list)
    publish_latency_max: list[float] = field(default_factory=list)

    publish_delay_latency_avg: list[float] = field(default_factory=list)
    publish_delay_latency_50pct: list[int] = field(default_factory=list)
    publish_delay_latency_75pct: list[int] = field(default_factory=list)
    publish_delay_latency_95pct: list[int] = field(default_factory=list)
    publish_delay_latency_99pct: list[int] = field(default_factory=list)
    publish_delay_latency_999pct: list[int] = field(default_factory=list)
    publish_delay_latency_9999pct: list[int] = field(default_factory=list)
    publish_delay_latency_max: list[int] = field(default_factory=list)

    aggregated_publish_latency_avg: float = 0.0
    aggregated_publish_latency_50pct: float = 0.0
    aggregated_publish_latency_75pct: float = 0.0
    aggregated_publish_latency_95pct: float = 0.0
    aggregated_publish_latency_99pct: float = 0.0
    aggregated_publish_latency_999pct: float = 0.0
    aggregated_publish_latency_9999pct: float = 0.0
    aggregated_publish_latency_max: float = 0.0

    aggregated_publish_delay_latency_avg: float = 0.0
    aggregated_publish_delay_latency_50pct: int = 0
    aggregated_publish_delay_latency_75pct: int = 0
    aggregated_publish_delay_latency_95pct: int = 0
    aggregated_publish_delay_latency_99pct: int = 0
    aggregated_publish_delay_latency_999pct: int = 0
    aggregated_publish_delay_latency_9999pct: int = 0
    aggregated_publish_delay_latency_max: int = 0

    aggregated_publish_latency_quantiles: dict[float, float] = field(
        default_factory=dict
    )
    aggregated_publish_delay_latency_quantiles: dict[float, int] = field(
        default_factory=dict
    )

    end_to_end_latency_avg: list[float] = field(default_factory=list)
    end_to_end_latency_50pct: list[float] = field(default_factory=list)
    end_to_end_latency_75pct: list[float] = field(default_factory=list)
    end_to_end_latency_95pct: list[float] = field(default_factory=list)
    end_to_end_latency_99pct: list[float] = field(default_factory=list)
    end_to_end_latency_999pct: list[float] = field(default_factory=list)
    end_to_end_latency_9999pct: list[float] = field(default_factory=list)
    end_to_end_latency_max: list[float] = field(default_factory=list)

    aggregated_end_to_end_latency_quantiles: dict[float, float] = field(
        default_factory=dict
    )

    aggregated_end_to_end_latency_avg: float = 0.0
    aggregated_end_to_end_latency_50pct: float = 0.0
    aggregated_end_to_end_latency_75pct: float = 0.0
    aggregated_end_to_end_latency_95pct: float = 0.0
    aggregated_end_to_end_latency_99pct: float = 0.0
    aggregated_end_to_end_latency_999pct: float = 0.0
    aggregated_end_to_end_latency_9999pct: float = 0.0
    aggregated_end_to_end_latency_max: float = 0.0

    unknown: dict[str, Any] = field(default_factory=dict, compare=False)


def _json_key(name: str) -> str:
    if name == "message_size_bytes":
        return "messageSize"
    first, *rest = name.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


def _schema() -> tuple[tuple[str, str, str], ...]:
    entries = []
    for item in fields(TestResult):
        if item.name == "unknown":
            continue
        kind = str(item.type)
        if kind not in _KINDS:
            raise TypeError(f"TestResult.{item.name}: no JSON kind for {kind!r}")
        entries.append((item.name, _json_key(item.name), kind))
    return tuple(entries)


#: (attribute, OMB key, kind) for every OMB field, in OMB's order.
_SCHEMA = _schema()

#: Every key of an OMB result file, in the order Jackson writes them.
RESULT_KEYS: tuple[str, ...] = tuple(key for _, key, _ in _SCHEMA)


# --------------------------------------------------------------------------
# Histograms to OMB numbers
# --------------------------------------------------------------------------


#: (attribute prefix, reported in ms): publish delay alone stays in us.
_FAMILIES: tuple[tuple[str, bool], ...] = (
    ("publish_latency", True),
    ("publish_delay_latency", False),
    ("end_to_end_latency", True),
)


def _figures(
    histogram: HdrHistogram, in_ms: bool
) -> tuple[float, list[float] | list[int], float | int, JavaStats]:
    """Average, OMB's percentiles and maximum, in the family's unit.

    In ms every figure is a double (`value_us / 1000.0`, as OMB divides);
    in us the average is a double and the percentiles and maximum integers.
    """
    stats = JavaStats(histogram)
    mean_us = stats.mean()
    values_us = [stats.value_at_percentile(p) for _, p in PERCENTILES]
    max_us = stats.max_value()
    if in_ms:
        return mean_us / 1000.0, [v / 1000.0 for v in values_us], max_us / 1000.0, stats
    return mean_us, values_us, max_us, stats


def append_period_rates(
    result: TestResult,
    *,
    publish_rate_per_s: float,
    publish_error_rate_per_s: float,
    consume_rate_per_s: float,
    backlog_messages: int,
) -> None:
    """Append one stats period's rates and backlog to the series."""
    result.publish_rate.append(float(publish_rate_per_s))
    result.publish_error_rate.append(float(publish_error_rate_per_s))
    result.consume_rate.append(float(consume_rate_per_s))
    result.backlog.append(int(backlog_messages))


def append_period_latencies(
    result: TestResult,
    publish: HdrHistogram,
    publish_delay: HdrHistogram,
    end_to_end: HdrHistogram,
) -> None:
    """Append one period's latency figures, from its interval histograms (us)."""
    histograms = (publish, publish_delay, end_to_end)
    for (prefix, in_ms), histogram in zip(_FAMILIES, histograms, strict=True):
        average, values, maximum, _ = _figures(histogram, in_ms)
        getattr(result, f"{prefix}_avg").append(average)
        for (suffix, _), value in zip(PERCENTILES, values, strict=True):
            getattr(result, f"{prefix}_{suffix}").append(value)
        getattr(result, f"{prefix}_max").append(maximum)


def add_period(
    result: TestResult,
    publish_rate_per_s: float,
    publish_error_rate_per_s: float,
    consume_rate_per_s: float,
    backlog_messages: int,
    publish: HdrHistogram,
    publish_delay: HdrHistogram,
    end_to_end: HdrHistogram,
) -> None:
    """Append one whole stats period: rates, backlog and latency figures."""
    append_period_rates(
        result,
        publish_rate_per_s=publish_rate_per_s,
        publish_error_rate_per_s=publish_error_rate_per_s,
        consume_rate_per_s=consume_rate_per_s,
        backlog_messages=backlog_messages,
    )
    append_period_latencies(result, publish, publish_delay, end_to_end)


def add_aggregates(
    result: TestResult,
    publish: HdrHistogram,
    publish_delay: HdrHistogram,
    end_to_end: HdrHistogram,
) -> None:
    """Fill the aggregated scalars and quantile maps from cumulative histograms."""
    histograms = (publish, publish_delay, end_to_end)
    for (prefix, in_ms), histogram in zip(_FAMILIES, histograms, strict=True):
        average, values, maximum, stats = _figures(histogram, in_ms)
        setattr(result, f"aggregated_{prefix}_avg", average)
        for (suffix, _), value in zip(PERCENTILES, values, strict=True):
            setattr(result, f"aggregated_{prefix}_{suffix}", value)
        setattr(result, f"aggregated_{prefix}_max", maximum)
        points = stats.quantile_points()
        quantile_map = {p: (v / 1000.0 if in_ms else v) for p, v in points}
        setattr(result, f"aggregated_{prefix}_quantiles", quantile_map)


# --------------------------------------------------------------------------
# Jackson-style JSON text
# --------------------------------------------------------------------------


def dumps_result(result: TestResult) -> str:
    """The text Jackson's default pretty printer writes for OMB's TestResult."""
    entries = [
        f'  "{key}" : {_format_value(kind, getattr(result, name))}'
        for name, key, kind in _SCHEMA
    ]
    return "{\n" + ",\n".join(entries) + "\n}"


def _format_value(kind: str, value: Any) -> str:
    if kind == _STR:
        return _json_string(value)
    if kind == _INT:
        return str(int(value))
    if kind == _DOUBLE:
        return _json_double(value)
    if kind in (_DOUBLES, _INTS):
        scalar = _json_double if kind == _DOUBLES else _json_long
        if not value:
            return "[ ]"
        return "[ " + ", ".join(scalar(item) for item in value) + " ]"
    scalar = _json_double if kind == _MAP_DOUBLE else _json_long
    if not value:
        return "{ }"
    # A Java TreeMap<Double, ...>: ascending by numeric key.
    lines = [
        f'    "{java_double_str(float(p))}" : {scalar(value[p])}'
        for p in sorted(value, key=float)
    ]
    return "{\n" + ",\n".join(lines) + "\n  }"


def _json_long(value: Any) -> str:
    return str(int(value))


def _json_double(value: Any) -> str:
    number = float(value)
    if math.isfinite(number):
        return java_double_str(number)
    # Jackson quotes non-finite doubles by default (QUOTE_NON_NUMERIC_NUMBERS).
    return f'"{java_double_str(number)}"'


# Jackson escapes only '"', '\' and control characters, using the short forms
# for five of them and \u00XX (upper-case hex) for the rest.
_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def _json_string(text: str) -> str:
    out = []
    for char in text:
        if char in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[char])
        elif ord(char) < 0x20:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


# --------------------------------------------------------------------------
# Reading result files
# --------------------------------------------------------------------------


def load_result(path: str | Path) -> TestResult:
    """Read an OMB result file, ours or Java's."""
    return loads_result(Path(path).read_text(encoding="utf-8"))


def loads_result(text: str) -> TestResult:
    """Parse OMB result JSON text; see `result_from_json` for what is allowed."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"an OMB result is a JSON object, got {type(data).__name__}")
    return result_from_json(data)


def result_from_json(data: Mapping[str, Any]) -> TestResult:
    """A TestResult from a parsed JSON object, checking every value's kind.

    Takes what Java writes: `1.0E7`-style exponents, and `"NaN"`,
    `"Infinity"` and `"-Infinity"` strings where a double is expected
    (Jackson quotes non-finite doubles). Also takes a whole-valued number
    such as `4.0` where an integer is expected, and `null` for a string.
    Nothing else is converted: a list must be a JSON array, a map an object
    keyed by percentiles from 0 to 100, an integer a number (never the
    string "1024"), a string a string. Every rate, latency and count must be
    >= 0 (NaN passes: it says "no value"); only the backlog may be negative.
    Missing keys keep their defaults; keys OMB's class lacks go to `unknown`
    (not written back). A value that breaks these rules raises
    ResultValueError naming its key.
    """
    result = TestResult()
    known = {key: (name, kind) for name, key, kind in _SCHEMA}
    for key, value in data.items():
        if key not in known:
            result.unknown[key] = value
            continue
        name, kind = known[key]
        setattr(result, name, _coerce(kind, key, value))
    return result


# Keys whose numbers may be negative: OMB's backlog is messages sent times
# subscriptions minus messages received, which redeliveries can push below 0.
_SIGNED_KEYS: Final = frozenset({"backlog"})

# Jackson's text for non-finite doubles (QUOTE_NON_NUMERIC_NUMBERS).
_NON_FINITE: Final = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}

_A_NUMBER: Final = 'expected a number, or "NaN" or "Infinity" as Jackson writes them'
_A_WHOLE_NUMBER: Final = "expected a whole number"
_AT_LEAST_ZERO: Final = ">= 0"


def _coerce(kind: str, key: str, value: Any) -> Any:
    signed = key in _SIGNED_KEYS
    if kind == _STR:
        if value is None:  # Jackson writes an unset String as null
            return ""
        if not isinstance(value, str):
            raise ResultValueError(key, value, "expected a string")
        return value
    if kind == _INT:
        return _to_int(key, value, signed)
    if kind == _DOUBLE:
        return _to_double(key, value, signed)
    if kind in (_DOUBLES, _INTS):
        if not isinstance(value, list):
            what = "numbers" if kind == _DOUBLES else "whole numbers"
            raise ResultValueError(key, value, f"expected a list of {what}")
        if kind == _DOUBLES:
            return [_to_double(f"{key}[{i}]", v, signed) for i, v in enumerate(value)]
        return [_to_int(f"{key}[{i}]", v, signed) for i, v in enumerate(value)]
    if not isinstance(value, dict):
        raise ResultValueError(
            key, value, "expected an object of percentile: value pairs"
        )
    pairs = []
    for percentile_text, item in value.items():
        percentile = _percentile(key, percentile_text)
        where = f"{key}[{json.dumps(percentile_text)}]"
        if kind == _MAP_DOUBLE:
            pairs.append((percentile, _to_double(where, item, signed)))
        else:
            pairs.append((percentile, _to_int(where, item, signed)))
    return dict(sorted(pairs))


def _percentile(key: str, text: str) -> float:
    try:
        percentile = float(text)
    except ValueError:
        percentile = math.nan
    if not 0.0 <= percentile <= 100.0:  # also refuses NaN
        raise ResultValueError(key, text, "expected percentile keys from 0 to 100")
    return percentile


def _to_double(key: str, value: Any, signed: bool = False) -> float:
    if isinstance(value, str) and value in _NON_FINITE:
        number = _NON_FINITE[value]
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    else:
        raise ResultValueError(key, value, _A_NUMBER)
    if number < 0 and not signed:
        raise ResultValueError(key, value, f"expected a number {_AT_LEAST_ZERO}")
    return number


def _to_int(key: str, value: Any, signed: bool = False) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    else:
        raise ResultValueError(key, value, _A_WHOLE_NUMBER)
    if number < 0 and not signed:
        raise ResultValueError(key, value, f"{_A_WHOLE_NUMBER} {_AT_LEAST_ZERO}")
    return number
