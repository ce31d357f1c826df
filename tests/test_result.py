"""OMB result: numbers from histograms, Jackson's text, reading files back.

The histograms below are small enough to work every figure by hand:

* publish: 3 x 350 us, 1 x 1,200 us. Mean (3*350 + 1200) / 4 = 562.5 us.
  Ranks ceil(nextDown(p) * 4 / 100): p50 -> 2, p75 -> 3 (both 350 us),
  p95 and up -> 4 (1,200 us). Quantile map: 350 us reaches 75 %, the last
  bucket 100 %.
* publish delay: 2 x 3 us, 1 x 250,000 us (below 2**18, so buckets are 1 us
  wide). Mean 250,006 / 3; p50 -> rank 2 (3 us), p75 -> rank 3 (250,000).
* end-to-end: 1,000 us and 2,000 us. Mean 1.5 ms, p50 -> 1.0, p75 -> 2.0.
"""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path

import pytest

from aioredismq.errors import ResultValueError
from runner.histograms import (
    new_end_to_end_histogram,
    new_publish_delay_histogram,
    new_publish_histogram,
)
from runner.result import (
    RESULT_KEYS,
    TestResult,
    add_aggregates,
    add_period,
    append_period_latencies,
    append_period_rates,
    dumps_result,
    load_result,
    loads_result,
)

# TestResult.java field order (Jackson writes public fields in this order).
OMB_KEYS = [
    "workload",
    "driver",
    "messageSize",
    "topics",
    "partitions",
    "producersPerTopic",
    "consumersPerTopic",
    "publishRate",
    "publishErrorRate",
    "consumeRate",
    "backlog",
    "publishLatencyAvg",
    "publishLatency50pct",
    "publishLatency75pct",
    "publishLatency95pct",
    "publishLatency99pct",
    "publishLatency999pct",
    "publishLatency9999pct",
    "publishLatencyMax",
    "publishDelayLatencyAvg",
    "publishDelayLatency50pct",
    "publishDelayLatency75pct",
    "publishDelayLatency95pct",
    "publishDelayLatency99pct",
    "publishDelayLatency999pct",
    "publishDelayLatency9999pct",
    "publishDelayLatencyMax",
    "aggregatedPublishLatencyAvg",
    "aggregatedPublishLatency50pct",
    "aggregatedPublishLatency75pct",
    "aggregatedPublishLatency95pct",
    "aggregatedPublishLatency99pct",
    "aggregatedPublishLatency999pct",
    "aggregatedPublishLatency9999pct",
    "aggregatedPublishLatencyMax",
    "aggregatedPublishDelayLatencyAvg",
    "aggregatedPublishDelayLatency50pct",
    "aggregatedPublishDelayLatency75pct",
    "aggregatedPublishDelayLatency95pct",
    "aggregatedPublishDelayLatency99pct",
    "aggregatedPublishDelayLatency999pct",
    "aggregatedPublishDelayLatency9999pct",
    "aggregatedPublishDelayLatencyMax",
    "aggregatedPublishLatencyQuantiles",
    "aggregatedPublishDelayLatencyQuantiles",
    "endToEndLatencyAvg",
    "endToEndLatency50pct",
    "endToEndLatency75pct",
    "endToEndLatency95pct",
    "endToEndLatency99pct",
    "endToEndLatency999pct",
    "endToEndLatency9999pct",
    "endToEndLatencyMax",
    "aggregatedEndToEndLatencyQuantiles",
    "aggregatedEndToEndLatencyAvg",
    "aggregatedEndToEndLatency50pct",
    "aggregatedEndToEndLatency75pct",
    "aggregatedEndToEndLatency95pct",
    "aggregatedEndToEndLatency99pct",
    "aggregatedEndToEndLatency999pct",
    "aggregatedEndToEndLatency9999pct",
    "aggregatedEndToEndLatencyMax",
]

EXPECTED_TEXT = """{
  "workload" : "1 topic / 1 partition / 100b",
  "driver" : "Redis",
  "messageSize" : 100,
  "topics" : 1,
  "partitions" : 1,
  "producersPerTopic" : 1,
  "consumersPerTopic" : 1,
  "publishRate" : [ 49987.2 ],
  "publishErrorRate" : [ 0.0 ],
  "consumeRate" : [ 1.5E7 ],
  "backlog" : [ 12 ],
  "publishLatencyAvg" : [ 0.5625 ],
  "publishLatency50pct" : [ 0.35 ],
  "publishLatency75pct" : [ 0.35 ],
  "publishLatency95pct" : [ 1.2 ],
  "publishLatency99pct" : [ 1.2 ],
  "publishLatency999pct" : [ 1.2 ],
  "publishLatency9999pct" : [ 1.2 ],
  "publishLatencyMax" : [ 1.2 ],
  "publishDelayLatencyAvg" : [ 83335.33333333333 ],
  "publishDelayLatency50pct" : [ 3 ],
  "publishDelayLatency75pct" : [ 250000 ],
  "publishDelayLatency95pct" : [ 250000 ],
  "publishDelayLatency99pct" : [ 250000 ],
  "publishDelayLatency999pct" : [ 250000 ],
  "publishDelayLatency9999pct" : [ 250000 ],
  "publishDelayLatencyMax" : [ 250000 ],
  "aggregatedPublishLatencyAvg" : 0.5625,
  "aggregatedPublishLatency50pct" : 0.35,
  "aggregatedPublishLatency75pct" : 0.35,
  "aggregatedPublishLatency95pct" : 1.2,
  "aggregatedPublishLatency99pct" : 1.2,
  "aggregatedPublishLatency999pct" : 1.2,
  "aggregatedPublishLatency9999pct" : 1.2,
  "aggregatedPublishLatencyMax" : 1.2,
  "aggregatedPublishDelayLatencyAvg" : 83335.33333333333,
  "aggregatedPublishDelayLatency50pct" : 3,
  "aggregatedPublishDelayLatency75pct" : 250000,
  "aggregatedPublishDelayLatency95pct" : 250000,
  "aggregatedPublishDelayLatency99pct" : 250000,
  "aggregatedPublishDelayLatency999pct" : 250000,
  "aggregatedPublishDelayLatency9999pct" : 250000,
  "aggregatedPublishDelayLatencyMax" : 250000,
  "aggregatedPublishLatencyQuantiles" : {
    "75.0" : 0.35,
    "100.0" : 1.2
  },
  "aggregatedPublishDelayLatencyQuantiles" : {
    "66.66666666666667" : 3,
    "100.0" : 250000
  },
  "endToEndLatencyAvg" : [ 1.5 ],
  "endToEndLatency50pct" : [ 1.0 ],
  "endToEndLatency75pct" : [ 2.0 ],
  "endToEndLatency95pct" : [ 2.0 ],
  "endToEndLatency99pct" : [ 2.0 ],
  "endToEndLatency999pct" : [ 2.0 ],
  "endToEndLatency9999pct" : [ 2.0 ],
  "endToEndLatencyMax" : [ 2.0 ],
  "aggregatedEndToEndLatencyQuantiles" : {
    "50.0" : 1.0,
    "100.0" : 2.0
  },
  "aggregatedEndToEndLatencyAvg" : 1.5,
  "aggregatedEndToEndLatency50pct" : 1.0,
  "aggregatedEndToEndLatency75pct" : 2.0,
  "aggregatedEndToEndLatency95pct" : 2.0,
  "aggregatedEndToEndLatency99pct" : 2.0,
  "aggregatedEndToEndLatency999pct" : 2.0,
  "aggregatedEndToEndLatency9999pct" : 2.0,
  "aggregatedEndToEndLatencyMax" : 2.0
}"""


def worked_result() -> TestResult:
    result = TestResult(
        workload="1 topic / 1 partition / 100b",
        driver="Redis",
        message_size_bytes=100,
        topics=1,
        partitions=1,
        producers_per_topic=1,
        consumers_per_topic=1,
    )
    publish = new_publish_histogram()
    publish.record_value(350, 3)
    publish.record_value(1200)
    delay = new_publish_delay_histogram()
    delay.record_value(3, 2)
    delay.record_value(250_000)
    end_to_end = new_end_to_end_histogram()
    end_to_end.record_value(1000)
    end_to_end.record_value(2000)
    add_period(result, 49987.2, 0.0, 1.5e7, 12, publish, delay, end_to_end)
    add_aggregates(result, publish, delay, end_to_end)
    return result


def test_keys_follow_omb_declaration_order() -> None:
    assert list(RESULT_KEYS) == OMB_KEYS


def test_figures_and_units() -> None:
    result = worked_result()
    assert result.publish_latency_avg == [0.5625]
    assert result.publish_latency_50pct == [0.35]
    assert result.publish_latency_95pct == [1.2]
    assert result.publish_delay_latency_avg == [250_006 / 3]
    assert result.publish_delay_latency_50pct == [3]
    assert result.publish_delay_latency_75pct == [250_000]
    assert all(isinstance(v, int) for v in result.publish_delay_latency_max)
    assert isinstance(result.aggregated_publish_delay_latency_max, int)
    assert result.end_to_end_latency_75pct == [2.0]
    assert result.aggregated_publish_latency_quantiles == {75.0: 0.35, 100.0: 1.2}
    assert result.aggregated_publish_delay_latency_quantiles == {
        100.0 * 2 / 3: 3,
        100.0: 250_000,
    }


def test_each_period_appends_to_every_series() -> None:
    result = worked_result()
    empty = new_publish_histogram()
    append_period_rates(
        result,
        publish_rate_per_s=1,
        publish_error_rate_per_s=0,
        consume_rate_per_s=2,
        backlog_messages=0,
    )
    append_period_latencies(result, empty, empty, new_end_to_end_histogram())
    series = [
        getattr(result, f.name) for f in fields(result) if f.type.startswith("list")
    ]
    assert len(series) == 4 + 3 * 8  # rates and backlog, 3 latency families
    assert {len(values) for values in series} == {2}
    assert result.publish_rate == [49987.2, 1.0]
    assert result.publish_delay_latency_max == [250_000, 0]
    assert result.end_to_end_latency_avg == [1.5, 0.0]


def test_dumps_is_jacksons_default_pretty_print() -> None:
    assert dumps_result(worked_result()) == EXPECTED_TEXT


def test_dumps_empty_containers_and_defaults() -> None:
    text = dumps_result(TestResult())
    assert text.startswith('{\n  "workload" : "",\n  "driver" : "",\n')
    assert '\n  "publishRate" : [ ],\n' in text
    assert '\n  "aggregatedPublishLatencyQuantiles" : { },\n' in text
    assert '\n  "aggregatedPublishDelayLatencyMax" : 0,\n' in text
    assert text.endswith('\n  "aggregatedEndToEndLatencyMax" : 0.0\n}')


def test_dumps_escapes_strings_and_quotes_non_finite_doubles() -> None:
    result = TestResult(driver='a"b\\c\n\x01\u00e9/', publish_rate=[math.nan])
    result.aggregated_publish_latency_avg = math.inf
    text = dumps_result(result)
    assert '\n  "driver" : "a\\"b\\\\c\\n\\u0001\u00e9/",\n' in text
    assert '\n  "publishRate" : [ "NaN" ],\n' in text
    assert '\n  "aggregatedPublishLatencyAvg" : "Infinity",\n' in text


def test_round_trip_through_text_and_file(tmp_path: Path) -> None:
    result = worked_result()
    path = tmp_path / "result.json"
    path.write_text(dumps_result(result), encoding="utf-8")
    loaded = load_result(path)
    assert loaded == result
    assert dumps_result(loaded) == EXPECTED_TEXT


def test_loads_tolerates_java_notation_and_other_writers() -> None:
    text = """{
      "workload" : "w", "messageSize" : 1024, "topics" : 2,
      "publishRate" : [ 1.0E7, 2.5E-4, 3 ],
      "publishErrorRate" : [ "NaN" ],
      "backlog" : [ 0, 4.0 ],
      "aggregatedPublishLatencyAvg" : 7,
      "aggregatedPublishDelayLatencyMax" : 1.5E3,
      "aggregatedPublishLatencyQuantiles" : { "100.0" : 9.9, "1.0E-4" : 0.1 },
      "publishLatency99999pct" : [ 1.0 ]
    }"""
    result = loads_result(text)
    assert result.message_size_bytes == 1024
    assert result.publish_rate == [1e7, 2.5e-4, 3.0]
    assert math.isnan(result.publish_error_rate[0])
    assert result.backlog == [0, 4]
    assert result.aggregated_publish_latency_avg == 7.0
    assert result.aggregated_publish_delay_latency_max == 1500
    assert list(result.aggregated_publish_latency_quantiles) == [1e-4, 100.0]
    assert result.unknown == {"publishLatency99999pct": [1.0]}
    assert result.consume_rate == []  # absent keys keep their defaults
    assert "publishLatency99999pct" not in dumps_result(result)


def test_loads_rejects_values_of_the_wrong_kind() -> None:
    with pytest.raises(ValueError, match=r"^an OMB result is a JSON object, got list$"):
        loads_result("[ ]")


_NUMBER = 'expected a number, or "NaN" or "Infinity" as Jackson writes them'


@pytest.mark.parametrize(
    ("text", "key", "value", "expected"),
    [
        # A string is not a list of one-letter items.
        ('"publishRate" : "fast"', "publishRate", "fast", "expected a list of numbers"),
        ('"backlog" : null', "backlog", None, "expected a list of whole numbers"),
        ('"publishRate" : [ 1.0, "2.5" ]', "publishRate[1]", "2.5", _NUMBER),
        ('"publishRate" : [ true ]', "publishRate[0]", True, _NUMBER),
        ('"publishRate" : [ "nan" ]', "publishRate[0]", "nan", _NUMBER),
        ('"messageSize" : "1024"', "messageSize", "1024", "expected a whole number"),
        ('"backlog" : [ 1.5 ]', "backlog[0]", 1.5, "expected a whole number"),
        ('"topics" : 1.5', "topics", 1.5, "expected a whole number"),
        ('"workload" : 7', "workload", 7, "expected a string"),
        ('"aggregatedPublishLatency99pct" : "1.5"', "aggregatedPublishLatency99pct",
         "1.5", _NUMBER),
        ('"aggregatedPublishLatencyQuantiles" : [ 1.0 ]',
         "aggregatedPublishLatencyQuantiles", [1.0],
         "expected an object of percentile: value pairs"),
        ('"aggregatedPublishLatencyQuantiles" : { "high" : 1.0 }',
         "aggregatedPublishLatencyQuantiles", "high",
         "expected percentile keys from 0 to 100"),
        ('"aggregatedPublishLatencyQuantiles" : { "101.0" : 1.0 }',
         "aggregatedPublishLatencyQuantiles", "101.0",
         "expected percentile keys from 0 to 100"),
        ('"aggregatedPublishDelayLatencyQuantiles" : { "50.0" : "3" }',
         'aggregatedPublishDelayLatencyQuantiles["50.0"]', "3",
         "expected a whole number"),
        # Nonsense values: no latency, rate or count is below 0.
        ('"aggregatedPublishLatency99pct" : -5', "aggregatedPublishLatency99pct", -5,
         "expected a number >= 0"),
        ('"aggregatedEndToEndLatencyMax" : "-Infinity"',
         "aggregatedEndToEndLatencyMax", "-Infinity", "expected a number >= 0"),
        ('"consumeRate" : [ 10.0, -1.0 ]', "consumeRate[1]", -1.0,
         "expected a number >= 0"),
        ('"publishDelayLatency99pct" : [ -3 ]', "publishDelayLatency99pct[0]", -3,
         "expected a whole number >= 0"),
        ('"partitions" : -1', "partitions", -1, "expected a whole number >= 0"),
        ('"aggregatedPublishLatencyQuantiles" : { "99.0" : -0.5 }',
         'aggregatedPublishLatencyQuantiles["99.0"]', -0.5, "expected a number >= 0"),
    ],
)  # fmt: skip
def test_loads_names_the_key_and_value_of_a_bad_one(
    text: str, key: str, value: object, expected: str
) -> None:
    with pytest.raises(ResultValueError) as caught:
        loads_result("{ " + text + " }")
    error = caught.value
    assert isinstance(error, ValueError)
    assert (error.key, error.value, error.expected) == (key, value, expected)
    assert str(error) == f"{key}: {value!r} is not allowed; {expected}"


def test_loads_keeps_what_may_be_negative_or_not_a_number() -> None:
    # A backlog below 0 happens (redeliveries); NaN and Infinity are how
    # Jackson writes doubles that have no finite value; series may differ in
    # length.
    result = loads_result(
        '{ "backlog" : [ -3, 0 ], "publishRate" : [ "NaN", "Infinity", 1 ],'
        ' "consumeRate" : [ 2.0 ], "workload" : null }'
    )
    assert result.backlog == [-3, 0]
    assert math.isnan(result.publish_rate[0]) and result.publish_rate[1] == math.inf
    assert result.consume_rate == [2.0]
    assert result.workload == ""
