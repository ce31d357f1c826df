"""Histogram recording, Java-exact statistics and transport (no server).

Expected numbers are worked by hand from Java HdrHistogram 2.1.12's rules:
rank = max(1, ceil(nextDown(p) * total / 100)); percentiles report a
bucket's highest equivalent value (lowest for p == 0); the mean weights
bucket medians; the percentile iterator floors log2 for its tick size.
"""

from __future__ import annotations

import array
import base64
import math
from collections.abc import Callable

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from runner import histograms
from runner.histograms import (
    END_TO_END_HIGHEST_US,
    PUBLISH_HIGHEST_US,
    JavaStats,
    SampleBuffer,
    add_into,
    decode,
    encode,
    java_double_str,
    max_value,
    mean,
    merge_encoded,
    new_end_to_end_histogram,
    new_publish_delay_histogram,
    new_publish_histogram,
    quantile_points,
    quantiles,
    value_at_percentile,
)


def small_histogram(*values: int, digits: int = 5) -> HdrHistogram:
    histogram = HdrHistogram(1, 60_000_000, digits)
    for value in values:
        histogram.record_value(value)
    return histogram


# --------------------------------------------------------------------------
# Ranges
# --------------------------------------------------------------------------


def test_factories_use_omb_ranges() -> None:
    for factory, highest in (
        (new_publish_histogram, 60_000_000),
        (new_publish_delay_histogram, 60_000_000),
        (new_end_to_end_histogram, 43_200_000_000),
    ):
        histogram = factory()
        assert histogram.lowest_trackable_value == 1
        assert histogram.highest_trackable_value == highest
        assert histogram.significant_figures == 5
    assert PUBLISH_HIGHEST_US == 60_000_000
    assert END_TO_END_HIGHEST_US == 43_200_000_000


# --------------------------------------------------------------------------
# Percentile rank rule
# --------------------------------------------------------------------------


def test_rank_is_ceil_not_nearest() -> None:
    # 4 samples, p30: 29.999...*4/100 = 1.1999... -> ceil 2 -> the 2nd value.
    # hdrh rounds 1.2 to nearest (1) and answers the 1st value.
    histogram = small_histogram(1, 2, 3, 4)
    assert value_at_percentile(histogram, 30.0) == 2
    assert histogram.get_value_at_percentile(30.0) == 1
    # nextDown keeps exact ranks exact: p25 -> rank 1, p75 -> rank 3.
    assert value_at_percentile(histogram, 25.0) == 1
    assert value_at_percentile(histogram, 50.0) == 2
    assert value_at_percentile(histogram, 75.0) == 3
    assert value_at_percentile(histogram, 75.1) == 4


def test_percentile_reports_highest_equivalent_value() -> None:
    # 5 digits: 1,000,000 sits in a bucket 4 wide, 1,000,000..1,000,003.
    histogram = small_histogram(1_000_000)
    assert value_at_percentile(histogram, 50.0) == 1_000_003
    assert value_at_percentile(histogram, 0.0) == 1_000_000
    assert max_value(histogram) == 1_000_003


def test_b20_p0_and_p100_3_digits() -> None:
    histogram = HdrHistogram(1, 3_600_000_000, 3)
    histogram.record_value(1)
    histogram.record_value(1_000_001)
    p100 = value_at_percentile(histogram, 100.0)
    assert p100 == 1_000_447  # top of the bucket 999,936..1,000,447
    assert p100 != 999_936
    assert 1_000_001 <= p100 == max_value(histogram)
    p0 = value_at_percentile(histogram, 0.0)
    assert p0 == 1 == histogram.get_min_value()

    rng = np.random.default_rng(20)
    for value in rng.integers(1, 10_000_001, 10_000).tolist():
        histogram.record_value(value)
    assert value_at_percentile(histogram, 100.0) == max_value(histogram)
    grid = [0.0, 0.1, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 100.0]
    answers = [value_at_percentile(histogram, p) for p in grid]
    assert answers == sorted(answers)


def test_empty_histogram_is_all_zero() -> None:
    histogram = new_publish_histogram()
    assert value_at_percentile(histogram, 50.0) == 0
    assert mean(histogram) == 0.0
    assert max_value(histogram) == 0
    assert quantiles(histogram) == {}


# --------------------------------------------------------------------------
# Mean
# --------------------------------------------------------------------------


def test_mean_uses_bucket_medians() -> None:
    # Medians: 1 -> 1, 3 -> 3, 1,000,000 -> 1,000,002 (bucket 4 wide).
    histogram = small_histogram(1, 3, 1_000_000, 1_000_000)
    assert mean(histogram) == (1 + 3 + 2 * 1_000_002) / 4 == 500_002.0


def test_mean_over_many_bucket_widths() -> None:
    # Sums stay below 2**53, so Java's double running sum is exact and the
    # mean is the exact integer sum of medians divided by the count.
    rng = np.random.default_rng(7)
    histogram = new_end_to_end_histogram()
    expected_sum, total = 0, 0
    values = rng.integers(1, 4 * 10**10, 3000).tolist()
    for value, count in zip(values, rng.integers(1, 4, 3000).tolist(), strict=True):
        histogram.record_value(value, count)
        lowest = histogram.get_lowest_equivalent_value(value)
        width = histogram.get_highest_equivalent_value(value) - lowest + 1
        expected_sum += (lowest + width // 2) * count
        total += count
    assert mean(histogram) == expected_sum / total


# --------------------------------------------------------------------------
# Quantile maps (Java PercentileIterator, 100 ticks per half distance)
# --------------------------------------------------------------------------


def test_quantile_keys_are_reached_percentiles() -> None:
    histogram = small_histogram(1, 2, 3)
    assert quantiles(histogram) == {
        "33.333333333333336": 1,
        "66.66666666666667": 2,
        "100.0": 3,
    }


def test_quantile_steps_skip_thin_buckets() -> None:
    # 1000 samples: 100 x 1 (10.0 %), 2 x 2 (10.2 %), 2 x 3 (10.4 %), rest 4.
    # Levels below 50 % go in 0.5 steps: after 10.0 the next level is 10.5,
    # reached first by value 4's bucket, so values 2 and 3 never appear.
    histogram = small_histogram()
    for value, count in ((1, 100), (2, 2), (3, 2), (4, 896)):
        histogram.record_value(value, count)
    assert quantiles(histogram) == {"10.0": 1, "100.0": 4}


def test_quantile_tick_exponent_is_floored() -> None:
    # 6000 x 1 (60.0 %), 22 x 2 (60.22 %), 3978 x 3. Between 50 and 75 % Java
    # steps by 0.25 (floor(log2(2.5)) = 1), so after 60.0 comes 60.25 and the
    # 60.22 bucket is passed over. An unfloored exponent (1.32) would step by
    # 0.2 to 60.2 and list it, as the hdrh iterator does.
    histogram = small_histogram()
    for value, count in ((1, 6000), (2, 22), (3, 3978)):
        histogram.record_value(value, count)
    assert quantiles(histogram) == {"60.0": 1, "100.0": 3}
    hdrh_levels = {
        round(item.percentile, 6) for item in histogram.get_percentile_iterator(100)
    }
    assert 60.22 in hdrh_levels


def test_quantile_values_are_highest_equivalent() -> None:
    histogram = small_histogram(1_000_000, 2_000_000)
    # 2,000,000 sits in a bucket 8 wide: 2,000,000..2,000,007.
    assert quantile_points(histogram) == [(50.0, 1_000_003), (100.0, 2_000_007)]


def _java_percentile_iteration(histogram: HdrHistogram) -> dict[float, int]:
    """Literal port of Java's AbstractHistogramIterator + PercentileIterator.

    Walks every counts index as Java does (not only occupied buckets), so it
    checks the shortcut `JavaStats` takes.
    """
    total = histogram.get_total_count()
    out: dict[float, int] = {}
    index, count_to_index, fresh = 0, 0, True
    level, reached_last = 0.0, False
    while True:
        if count_to_index >= total:
            if reached_last or total == 0:
                return out
            level, reached_last = 100.0, True
        while True:  # next()
            count = histogram.get_count_at_index(index)
            if fresh:
                count_to_index += count
                fresh = False
            percentile = (100.0 * count_to_index) / total
            if count != 0 and percentile >= level:
                lowest = histogram.get_value_from_index(index)
                out[percentile] = histogram.get_highest_equivalent_value(lowest)
                if level < 100.0:
                    ratio = 100.0 / (100.0 - level)
                    exponent = int(math.log(ratio) / math.log(2))
                    level += 100.0 / (100 * int(2.0 ** (exponent + 1)))
                break
            index, fresh = index + 1, True


def test_quantiles_match_literal_java_iteration() -> None:
    rng = np.random.default_rng(5)
    for trial in range(4):
        histogram = HdrHistogram(1, 100_000, 2)
        size = int(rng.integers(1, 3000))
        spread = rng.lognormal(5, 1.5, size).astype(np.int64).clip(0, 100_000)
        for value in spread.tolist():
            histogram.record_value(value, int(rng.integers(1, 4)))
        expected = _java_percentile_iteration(histogram)
        assert dict(quantile_points(histogram)) == expected, trial


# --------------------------------------------------------------------------
# Double.toString
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (1e7, "1.0E7"),
        (2.5e-4, "2.5E-4"),
        (100.0, "100.0"),
        (0.001, "0.001"),
        (12345.678, "12345.678"),
        (0.1, "0.1"),
        (9999999.0, "9999999.0"),
        (123456789.0, "1.23456789E8"),
        (0.00099, "9.9E-4"),
        (1.5e300, "1.5E300"),
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (-2.5, "-2.5"),
        (-1e-5, "-1.0E-5"),
        (100.0 / 3.0, "33.333333333333336"),
        (5e-324, "4.9E-324"),
        (math.nan, "NaN"),
        (math.inf, "Infinity"),
        (-math.inf, "-Infinity"),
    ],
)
def test_java_double_str(number: float, text: str) -> None:
    assert java_double_str(number) == text


# --------------------------------------------------------------------------
# SampleBuffer
# --------------------------------------------------------------------------


def test_b18_out_of_range_samples_are_clamped_and_counted() -> None:
    histogram = HdrHistogram(1, 60_000_000, 3)
    buffer = SampleBuffer()
    buffer.extend([1000] * 1000)
    buffer.add(120_000_000, 10)
    buffer.record(-5)
    assert buffer.fold_into(histogram) == 1011

    assert buffer.overflow_count == 10
    assert buffer.negative_count == 1
    assert buffer.attempted_count == 1011 == histogram.get_total_count()
    in_range = histogram.get_total_count() - buffer.overflow_count
    assert in_range - buffer.negative_count == 1000
    # Clamped to 60,000,000, whose 3-digit bucket tops out at 60,030,975.
    assert max_value(histogram) == 60_030_975
    assert value_at_percentile(histogram, 0.0) == 0
    assert histogram.get_count_at_value(1000) == 1000


def test_b22_negative_end_to_end_samples_are_kept_as_zero() -> None:
    buffer = SampleBuffer(new_end_to_end_histogram)
    buffer.extend(np.full(10_000, -4000, dtype=np.int64))
    histogram = buffer.take()
    assert buffer.negative_count == 10_000
    assert histogram.get_total_count() == 10_000
    assert value_at_percentile(histogram, 100.0) == 0


def test_take_starts_a_new_interval() -> None:
    buffer = SampleBuffer()
    buffer.record(10)
    buffer.add(20, 3)
    assert buffer.pending_count == 4
    first = buffer.take()
    second = buffer.take()
    assert first.get_total_count() == 4
    assert second.get_total_count() == 0
    assert buffer.pending_count == 0
    assert buffer.attempted_count == 4
    buffer.reset_counters()
    assert (buffer.attempted_count, buffer.overflow_count) == (0, 0)


def test_clear_drops_pending_samples_uncounted() -> None:
    buffer = SampleBuffer()
    buffer.extend([5, 6, 7])
    buffer.clear()
    assert buffer.take().get_total_count() == 0
    assert buffer.attempted_count == 0


def test_extend_accepts_lists_arrays_and_numpy() -> None:
    buffer = SampleBuffer()
    source = array.array("q", [1, 2, 3])
    buffer.extend(source)
    source[0] = 999  # the buffer copied the values
    buffer.extend(np.array([4, 5], dtype=np.int32))
    buffer.extend(np.array([2**63 + 5], dtype=np.uint64))
    buffer.extend([2**70, -(2**70)])
    buffer.extend([])
    histogram = buffer.take()
    assert histogram.get_total_count() == 8
    assert histogram.get_count_at_value(1) == 1
    assert histogram.get_count_at_value(999) == 0
    assert buffer.overflow_count == 2
    assert buffer.negative_count == 1


def test_extend_rejects_non_integer_samples() -> None:
    buffer = SampleBuffer()
    with pytest.raises(TypeError, match=r"^samples must be integer microseconds"):
        buffer.extend([1.5, 2.0])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"^count must be >= 0, got -1$"):
        buffer.add(5, -1)


@pytest.mark.parametrize("factory", [new_publish_histogram, new_end_to_end_histogram])
def test_fold_equals_recording_one_by_one(
    factory: Callable[[], HdrHistogram],
) -> None:
    rng = np.random.default_rng(11)
    reference = factory()
    highest = int(reference.highest_trackable_value)
    powers = 2 ** rng.integers(0, 36, 300)
    values = np.concatenate(
        [rng.integers(0, highest + 1, 5000), powers, powers - 1, [0, highest]]
    ).clip(0, highest)
    for value in values.tolist():
        reference.record_value(value)

    buffer = SampleBuffer(factory)
    buffer.extend(values)
    folded = buffer.take()
    assert np.array_equal(
        np.ctypeslib.as_array(folded.counts), np.ctypeslib.as_array(reference.counts)
    )
    assert folded.get_total_count() == reference.get_total_count()
    assert folded.get_max_value() == reference.get_max_value()
    assert encode(folded) == encode(reference)


# --------------------------------------------------------------------------
# Encoding and merging
# --------------------------------------------------------------------------


def test_b21a_huge_count_survives_encoding() -> None:
    histogram = HdrHistogram(1, 3_600_000_000, 3)
    histogram.record_value(1000, 3_000_000_000)
    text = encode(histogram)
    assert isinstance(text, str) and text.startswith("HISTF")
    decoded = decode(text)
    assert decoded.get_total_count() == 3_000_000_000
    assert JavaStats(decoded).total_count == 3_000_000_000
    assert value_at_percentile(decoded, 50.0) == 1000
    assert encode(decoded) == text


def test_b21c_raw_compressed_bytes_decode() -> None:
    histogram = small_histogram(7, 7, 900)
    raw = base64.b64decode(encode(histogram))
    decoded = decode(raw)
    assert decoded.get_total_count() == 3
    assert value_at_percentile(decoded, 100.0) == 900


def test_decode_garbage_says_what_is_wrong() -> None:
    with pytest.raises(ValueError, match=r"^not an HdrHistogram V2 compressed"):
        decode("bm90IGEgaGlzdG9ncmFt")
    with pytest.raises(ValueError, match=r"bytes follow its header"):
        decode(bytes.fromhex("1c849314000000ff") + b"short")


def test_merge_encoded_adds_all_samples() -> None:
    first = new_publish_histogram()
    first.record_value(100, 5)
    second = new_publish_histogram()
    second.record_value(2_000_000, 2)
    merged = merge_encoded([encode(first), encode(second)], new_publish_histogram)
    assert merged.get_total_count() == 7
    assert value_at_percentile(merged, 50.0) == 100
    assert max_value(merged) == 2_000_007


def test_merge_keeps_samples_from_a_different_range() -> None:
    wide = HdrHistogram(1, 3_600_000_000, 3)
    wide.record_value(5000, 4)
    wide.record_value(120_000_000)
    target = new_publish_histogram()
    assert add_into(target, decode(encode(wide))) == 1
    assert target.get_total_count() == 5
    assert target.get_count_at_value(5000) == 4
    # Clamped to 60,000,000: the top of its 5-digit bucket is 60,000,255.
    assert max_value(target) == 60_000_255

    merged = merge_encoded([encode(wide)], new_publish_histogram)
    assert merged.get_total_count() == 5


# Bytes as Java HdrHistogram's compressed encoder writes them (cookie
# 0x1c849314, zlib payload) for a histogram of range 1..2048 at 3 significant
# digits holding the single value 2048.
JAVA_ENCODED_2048 = "HISTFAAAACB4nJNpmSzMwMDAzAABMJoRQnEw2H+AsP7LMwEARZgDpQ=="


def test_decodes_a_histogram_encoded_by_java() -> None:
    decoded = histograms.decode(JAVA_ENCODED_2048)
    assert decoded.get_total_count() == 1
    assert (decoded.lowest_trackable_value, decoded.highest_trackable_value) == (
        1,
        2048,
    )
    # 2048 sits in the second bucket, two units wide: 2048-2049.
    assert histograms.max_value(decoded) == 2049
    assert histograms.value_at_percentile(decoded, 50.0) == 2049
    merged = histograms.merge_encoded(
        [JAVA_ENCODED_2048], histograms.new_publish_histogram
    )
    assert merged.get_total_count() == 1
