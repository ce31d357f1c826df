"""Latency histograms: cheap recording, Java-exact statistics, wire encoding.

Three concerns live here, all in microseconds:

* **Ranges.** OMB's recorders: publish latency and publish delay track 1 us to
  60 s, end-to-end 1 us to 12 h, all with 5 significant digits.
* **Recording.** `SampleBuffer` is what the send and receive callbacks feed. It
  only appends integers; the histogram work (bucket lookup, counting) happens
  once per stats period in `fold_into`/`take`, vectorised with numpy. Samples
  outside the range are clamped and counted, never dropped and never raised.
* **Statistics.** The `hdrhistogram` package stores and encodes histograms,
  but its percentile rank rule (round to nearest) and its percentile iterator
  (no floor on the log2 tick exponent) differ from Java HdrHistogram 2.1.12,
  which OMB uses. `JavaStats` recomputes OMB's figures from the bucket counts
  with Java's arithmetic, operation for operation, so results equal Java's.
"""

from __future__ import annotations

import array
import binascii
import math
import struct
import sys
import zlib
from collections.abc import Callable, Iterable, Sequence
from fractions import Fraction

import numpy as np
import numpy.typing as npt
from hdrh.codec import HdrCookieException, HdrLengthException
from hdrh.histogram import HdrHistogram

__all__ = [
    "END_TO_END_HIGHEST_US",
    "END_TO_END_LOWEST_US",
    "PUBLISH_HIGHEST_US",
    "PUBLISH_LOWEST_US",
    "QUANTILE_TICKS_PER_HALF_DISTANCE",
    "SIGNIFICANT_DIGITS",
    "HistogramFactory",
    "JavaStats",
    "SampleBuffer",
    "add_into",
    "decode",
    "encode",
    "java_double_str",
    "max_value",
    "mean",
    "merge_encoded",
    "new_end_to_end_histogram",
    "new_publish_delay_histogram",
    "new_publish_histogram",
    "reset_histogram",
    "quantile_points",
    "quantiles",
    "value_at_percentile",
]

PUBLISH_LOWEST_US = 1
PUBLISH_HIGHEST_US = 60_000_000  # 60 s; also the publish-delay range
END_TO_END_LOWEST_US = 1
END_TO_END_HIGHEST_US = 43_200_000_000  # 12 h
SIGNIFICANT_DIGITS = 5

#: OMB builds its quantile maps with `percentiles(100)`.
QUANTILE_TICKS_PER_HALF_DISTANCE = 100

HistogramFactory = Callable[[], HdrHistogram]
Int64Array = npt.NDArray[np.int64]

# Above this, int64 -> float64 is no longer exact and the vectorised bucket
# lookup could land one bucket off; such histograms take the slow, exact path.
_EXACT_FLOAT_LIMIT = 2**53
_INT64_MAX = int(np.iinfo(np.int64).max)
_COMPRESSED_COOKIE = 0x1C849314
_COMPRESSED_HEADER_COOKIE = struct.pack(">I", _COMPRESSED_COOKIE)


def new_publish_histogram() -> HdrHistogram:
    """An empty publish-latency histogram with OMB's range."""
    return HdrHistogram(PUBLISH_LOWEST_US, PUBLISH_HIGHEST_US, SIGNIFICANT_DIGITS)


def new_publish_delay_histogram() -> HdrHistogram:
    """An empty publish-delay histogram (same range as publish latency)."""
    return HdrHistogram(PUBLISH_LOWEST_US, PUBLISH_HIGHEST_US, SIGNIFICANT_DIGITS)


def new_end_to_end_histogram() -> HdrHistogram:
    """An empty end-to-end latency histogram with OMB's 12 h range."""
    return HdrHistogram(END_TO_END_LOWEST_US, END_TO_END_HIGHEST_US, SIGNIFICANT_DIGITS)


# --------------------------------------------------------------------------
# Bucket arithmetic shared by recording and statistics
# --------------------------------------------------------------------------


def _counts_view(h: HdrHistogram) -> npt.NDArray[np.unsignedinteger]:
    """The histogram's counts array, shared (not copied) as a numpy array."""
    view: npt.NDArray[np.unsignedinteger] = np.ctypeslib.as_array(h.counts)
    return view


def _indices_for(h: HdrHistogram, values_us: Int64Array) -> Int64Array:
    """Counts-array index of each value (Java `countsArrayIndex`), vectorised.

    Values must be in 0..highest and below 2**53, so that float64 holds them
    exactly and `frexp` gives the exact bit length.
    """
    unit = int(h.unit_magnitude)
    half_magnitude = int(h.sub_bucket_half_count_magnitude)
    masked = values_us | np.int64(h.sub_bucket_mask)
    bit_length = np.frexp(masked.astype(np.float64))[1].astype(np.int64)
    bucket = bit_length - unit - (half_magnitude + 1)
    sub_bucket = values_us >> (bucket + unit)
    base = (bucket + 1) << half_magnitude
    result: Int64Array = base + sub_bucket - int(h.sub_bucket_half_count)
    return result


def _bucket_edges(
    h: HdrHistogram, indices: Int64Array
) -> tuple[Int64Array, Int64Array]:
    """Lowest equivalent value and bucket width for each counts index."""
    half_magnitude = int(h.sub_bucket_half_count_magnitude)
    half_count = int(h.sub_bucket_half_count)
    bucket = (indices >> half_magnitude) - 1
    sub_bucket = (indices & (half_count - 1)) + half_count
    first = bucket < 0
    sub_bucket = np.where(first, sub_bucket - half_count, sub_bucket)
    bucket = np.where(first, 0, bucket)
    shift = bucket + int(h.unit_magnitude)
    lowest: Int64Array = sub_bucket << shift
    width: Int64Array = np.left_shift(np.int64(1), shift)
    return lowest, width


def _record_counts(h: HdrHistogram, values_us: Int64Array, counts: Int64Array) -> None:
    """Add `counts[i]` samples of `values_us[i]` (all in range) into `h`."""
    if values_us.size == 0:
        return
    vectorisable = (
        int(h.word_size) == 8 and int(h.highest_trackable_value) < _EXACT_FLOAT_LIMIT
    )
    if vectorisable:
        indices = _indices_for(h, values_us)
        np.add.at(_counts_view(h), indices, counts.astype(np.uint64))
        h.total_count += int(counts.sum())
        h.min_value = min(h.min_value, int(values_us.min()))
        h.max_value = max(h.max_value, int(values_us.max()))
        return
    for value_us, count in zip(values_us.tolist(), counts.tolist(), strict=True):
        h.record_value(value_us, count)


def _clamp(
    values_us: Int64Array, highest_us: int
) -> tuple[Int64Array, npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Clamp into 0..highest; return the masks of what was too low/high."""
    negative = values_us < 0
    overflow = values_us > highest_us
    clamped = np.clip(values_us, 0, highest_us)
    return clamped, negative, overflow


# --------------------------------------------------------------------------
# Recording
# --------------------------------------------------------------------------


class SampleBuffer:
    """Collects raw integer microsecond samples; folds them into a histogram.

    The hot path (`record`, `add`, `extend`) only appends to Python lists, so
    it costs tens of nanoseconds per sample. `take()` (or `fold_into`) does
    the histogram work for all buffered samples at once, with numpy, and
    starts a new interval: like Java's `Recorder.getIntervalHistogram()`.

    Samples above the histogram's highest trackable value are recorded as
    that value and counted in `overflow_count`; negative samples (clock skew
    on end-to-end latency) are recorded as 0 and counted in
    `negative_count`. Every sample passed in is therefore counted once:
    `attempted_count` equals the total recorded, clamped ones included.
    The three counters are cumulative across takes until `reset_counters()`.

    Not thread-safe: record and take from one thread (the event loop).
    """

    def __init__(self, factory: HistogramFactory = new_publish_histogram) -> None:
        self._factory = factory
        self._singles: list[int] = []
        self._chunks: list[Int64Array] = []
        self._weighted_values: list[int] = []
        self._weighted_counts: list[int] = []
        self._overflow_count = 0
        self._negative_count = 0
        self._attempted_count = 0

    # -- hot path ----------------------------------------------------------

    def record(self, value_us: int) -> None:
        """Buffer one sample."""
        self._singles.append(value_us)

    def add(self, value_us: int, count: int = 1) -> None:
        """Buffer `count` samples of the same value."""
        if count == 1:
            self._singles.append(value_us)
            return
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count!r}")
        if count:
            self._weighted_values.append(value_us)
            self._weighted_counts.append(count)

    def extend(
        self, values_us: Sequence[int] | array.array[int] | npt.NDArray[np.integer]
    ) -> None:
        """Buffer many samples: a list of ints, an `array.array` or an int array.

        The values are copied, so the caller may reuse its buffer.
        """
        chunk = np.array(values_us, copy=True)
        if chunk.size == 0:
            return
        if chunk.dtype.kind == "u":
            chunk = np.minimum(chunk, np.uint64(_INT64_MAX))
        elif chunk.dtype.kind == "O":
            chunk = _ints_to_int64(chunk.tolist())
        elif chunk.dtype.kind != "i":
            raise TypeError(
                f"samples must be integer microseconds, got dtype {chunk.dtype}"
            )
        self._chunks.append(chunk.astype(np.int64, copy=False).ravel())

    # -- counters ----------------------------------------------------------

    @property
    def overflow_count(self) -> int:
        """Samples above the highest trackable value, recorded at the ceiling."""
        return self._overflow_count

    @property
    def negative_count(self) -> int:
        """Negative samples, recorded as 0."""
        return self._negative_count

    @property
    def attempted_count(self) -> int:
        """Every sample folded so far, whether in range or clamped."""
        return self._attempted_count

    @property
    def pending_count(self) -> int:
        """Samples buffered and not yet folded."""
        in_chunks = sum(int(chunk.size) for chunk in self._chunks)
        return len(self._singles) + in_chunks + sum(self._weighted_counts)

    def reset_counters(self) -> None:
        """Zero the overflow, negative and attempted counters."""
        self._overflow_count = 0
        self._negative_count = 0
        self._attempted_count = 0

    # -- folding -----------------------------------------------------------

    def clear(self) -> None:
        """Drop buffered samples without recording or counting them."""
        self._singles = []
        self._chunks = []
        self._weighted_values = []
        self._weighted_counts = []

    def take(self) -> HdrHistogram:
        """A new histogram holding every buffered sample; the buffer empties."""
        histogram = self._factory()
        self.fold_into(histogram)
        return histogram

    def fold_into(self, histogram: HdrHistogram, *more: HdrHistogram) -> int:
        """Record every buffered sample into each histogram; return how many.

        Extra histograms (of the same range) get the same samples, so a
        period and a cumulative histogram can be fed from one pass; the
        clamp counters count each sample once.
        """
        singles, self._singles = self._singles, []
        chunks, self._chunks = self._chunks, []
        weighted_values, self._weighted_values = self._weighted_values, []
        weighted_counts, self._weighted_counts = self._weighted_counts, []
        highest_us = int(histogram.highest_trackable_value)

        if singles:
            chunks.append(_ints_to_int64(singles))
        plain = np.concatenate(chunks) if chunks else np.empty(0, np.int64)
        plain, negative, overflow = _clamp(plain, highest_us)
        values_us, counts = np.unique(plain, return_counts=True)
        negative_count = int(negative.sum())
        overflow_count = int(overflow.sum())

        if weighted_values:
            extra, negative, overflow = _clamp(
                _ints_to_int64(weighted_values), highest_us
            )
            extra_counts = np.array(weighted_counts, dtype=np.int64)
            values_us = np.concatenate([values_us, extra])
            counts = np.concatenate([counts.astype(np.int64), extra_counts])
            negative_count += int(extra_counts[negative].sum())
            overflow_count += int(extra_counts[overflow].sum())

        for target in (histogram, *more):
            _record_counts(target, values_us, counts.astype(np.int64))
        folded = int(counts.sum())
        self._negative_count += negative_count
        self._overflow_count += overflow_count
        self._attempted_count += folded
        return folded


def reset_histogram(histogram: HdrHistogram) -> None:
    """Empty a histogram in place.

    hdrh's own `reset` zeroes the counts one Python call at a time, which
    takes seconds for the 2.6 million buckets of the end-to-end range; this
    zeroes the shared counts array in one numpy call.
    """
    _counts_view(histogram)[:] = 0
    histogram.total_count = 0
    histogram.min_value = sys.maxsize
    histogram.max_value = 0
    histogram.start_time_stamp_msec = sys.maxsize
    histogram.end_time_stamp_msec = 0


def _ints_to_int64(values: Sequence[int]) -> Int64Array:
    """Python ints to int64; values beyond int64 saturate instead of raising."""
    try:
        return np.array(values, dtype=np.int64)
    except OverflowError:
        low, high = -_INT64_MAX - 1, _INT64_MAX
        return np.array([min(max(v, low), high) for v in values], dtype=np.int64)


# --------------------------------------------------------------------------
# Java-exact statistics
# --------------------------------------------------------------------------


class JavaStats:
    """OMB's figures for one histogram, computed as Java HdrHistogram 2.1.12 does.

    Building it scans the counts array once (numpy), so asking several
    percentiles of a large histogram costs one scan, not one per question.
    The histogram must not change while this object is in use.

    The total count is the sum of the bucket counts, which is what a
    histogram decoded from the wire reports in Java and in `hdrh` alike.
    """

    def __init__(self, histogram: HdrHistogram) -> None:
        counts = _counts_view(histogram)
        self._indices: Int64Array = np.flatnonzero(counts).astype(np.int64)
        self._counts: Int64Array = counts[self._indices].astype(np.int64)
        self._cumulative: Int64Array = np.cumsum(self._counts)
        self.total_count = int(self._cumulative[-1]) if self._counts.size else 0
        self._lowest, self._width = _bucket_edges(histogram, self._indices)

    def value_at_percentile(self, percentile: float) -> int:
        """Java `getValueAtPercentile`: rank `ceil(nextDown(p) * total / 100)`.

        The highest equivalent value of the first bucket whose running count
        reaches the rank (at least 1); the lowest equivalent value for p == 0.

        The multiply-then-divide order is that of HdrHistogram's current
        source; some 2.1.x releases divided `p / 100.0` first. For OMB's six
        percentiles and totals up to 1e10 the two orders give the same rank
        on every case tried, so the choice does not show in results.
        """
        if self.total_count == 0:
            return 0
        requested = min(max(math.nextafter(percentile, -math.inf), 0.0), 100.0)
        if math.isnan(requested):
            rank = 1  # Java: (long) Math.ceil(NaN) is 0, then max(0, 1)
        else:
            rank = max(math.ceil((requested * self.total_count) / 100.0), 1)
        position = int(np.searchsorted(self._cumulative, rank, side="left"))
        if position >= self._counts.size:
            return 0
        lowest = int(self._lowest[position])
        if percentile == 0.0:
            return lowest
        return lowest + int(self._width[position]) - 1

    def mean(self) -> float:
        """Java `getMean`: bucket medians weighted by count, summed in order.

        Java accumulates a double bucket by bucket in ascending order; numpy's
        cumulative sum adds in that same order, while its `sum` (pairwise) may
        round differently once the running total passes 2**53.
        """
        if self.total_count == 0:
            return 0.0
        medians = (self._lowest + (self._width >> 1)).astype(np.float64)
        weighted = medians * self._counts.astype(np.float64)
        total_value = float(np.cumsum(weighted)[-1])
        return (total_value * 1.0) / float(self.total_count)

    def max_value(self) -> int:
        """Java `getMaxValue`: highest equivalent value of the top bucket."""
        if self.total_count == 0:
            return 0
        # A decoded histogram only knows the top bucket, not the raw maximum,
        # and Java derives its maximum from that bucket the same way.
        return int(self._lowest[-1]) + int(self._width[-1]) - 1

    def quantile_points(
        self, ticks_per_half_distance: int = QUANTILE_TICKS_PER_HALF_DISTANCE
    ) -> list[tuple[float, int]]:
        """What Java's `percentiles(ticks)` iteration yields, duplicates merged.

        Each pair is (cumulative percentile actually reached at the bucket,
        the bucket's highest equivalent value), ascending, ending at 100.0:
        exactly the entries OMB puts in its `TreeMap<Double, ...>`.

        Java's iterator, reproduced step for step: levels start at 0; after
        each step the level grows by `100 / (ticks * 2**(floor(log2(100 /
        (100 - level))) + 1))`; a step stops at the first occupied bucket
        whose cumulative percentile is >= the level (it may stop at the same
        bucket several times); once the last bucket is reached, one more step
        goes to level 100.
        """
        if self.total_count == 0:
            return []
        total = float(self.total_count)
        reached = (100.0 * self._cumulative.astype(np.float64)) / total
        percentiles: list[float] = reached.tolist()
        highest: list[int] = (self._lowest + self._width - 1).tolist()

        points: dict[float, int] = {}
        position, level = 0, 0.0
        last = len(percentiles) - 1
        while True:
            while position < last and percentiles[position] < level:
                position += 1
            points[percentiles[position]] = highest[position]
            if position == last:
                # Java's extra final step to 100 % lands on this same bucket.
                break
            level += _percentile_step(level, ticks_per_half_distance)
        return sorted(points.items())

    def quantiles(
        self, ticks_per_half_distance: int = QUANTILE_TICKS_PER_HALF_DISTANCE
    ) -> dict[str, int]:
        """`quantile_points` keyed by Java's `Double.toString` of the percentile."""
        points = self.quantile_points(ticks_per_half_distance)
        return {java_double_str(p): value for p, value in points}


def _percentile_step(level: float, ticks_per_half_distance: int) -> float:
    """Java `PercentileIterator.incrementIterationLevel` step size.

    `(long)` on the log2 quotient truncates, i.e. floors for these positive
    values; the Python `hdrh` iterator skips that floor and so takes
    different steps. The quotient is exactly an integer at the levels where
    the step halves (50, 75, 87.5 ... %), and Python's `math.log` gives that
    integer exactly for every power of two up to 2**62, as an accurate Java
    `Math.log` does.
    """
    if level >= 100.0:
        return math.inf  # Java divides by zero here and gets Infinity too
    half_distances = int(math.log(100.0 / (100.0 - level)) / math.log(2))
    reporting_ticks = ticks_per_half_distance * int(2.0 ** (half_distances + 1))
    return 100.0 / reporting_ticks


def value_at_percentile(histogram: HdrHistogram, percentile: float) -> int:
    """Java `getValueAtPercentile` (see `JavaStats.value_at_percentile`)."""
    return JavaStats(histogram).value_at_percentile(percentile)


def mean(histogram: HdrHistogram) -> float:
    """Java `getMean` (see `JavaStats.mean`)."""
    return JavaStats(histogram).mean()


def max_value(histogram: HdrHistogram) -> int:
    """Java `getMaxValue` (see `JavaStats.max_value`)."""
    return JavaStats(histogram).max_value()


def quantile_points(histogram: HdrHistogram) -> list[tuple[float, int]]:
    """OMB's quantile map entries as (percentile, value_us) pairs."""
    return JavaStats(histogram).quantile_points()


def quantiles(histogram: HdrHistogram) -> dict[str, int]:
    """OMB's quantile map: Java-formatted percentile -> value in us."""
    return JavaStats(histogram).quantiles()


# --------------------------------------------------------------------------
# Java Double.toString
# --------------------------------------------------------------------------


def java_double_str(x: float) -> str:
    """Java's `Double.toString(x)`, as Jackson writes doubles.

    Shortest digits that read back as `x` (Python's `repr` gives them), laid
    out Java's way: plain decimal with at least one fractional digit for
    1e-3 <= |x| < 1e7, otherwise `d.dddE<exp>` (`1.0E7`, `2.5E-4`).

    Known shortcoming: this matches JDK 19 and later. Older JDKs (OMB's
    usual 11 or 17) sometimes print one or two extra digits for doubles
    whose shortest form is ambiguous, e.g. `2.0E-3` is fine but a few values
    come out as `...0001`-style tails. The number read back is identical,
    so only byte-for-byte comparison with such files can differ; porting
    the old `FloatingDecimal` algorithm would close that gap.
    """
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    sign = "-" if math.copysign(1.0, x) < 0 else ""
    if x == 0.0:
        return sign + "0.0"
    digits, exponent = _shortest_digits(abs(x))
    if -3 <= exponent < 7:
        if exponent >= 0:
            whole = digits[: exponent + 1].ljust(exponent + 1, "0")
            fraction = digits[exponent + 1 :] or "0"
            return f"{sign}{whole}.{fraction}"
        return f"{sign}0.{'0' * (-exponent - 1)}{digits}"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{exponent}"


def _shortest_digits(x: float) -> tuple[str, int]:
    """Significant digits of `x` > 0 and the power of ten of the first one."""
    text = repr(x)
    mantissa, _, exp_text = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    all_digits = whole + fraction
    leading_zeros = len(all_digits) - len(all_digits.lstrip("0"))
    digits = all_digits.strip("0") or "0"
    exponent = int(exp_text or "0") + len(whole) - 1 - leading_zeros
    if len(digits) == 1:
        digits, exponent = _java_two_digit_rule(x, digits, exponent)
    return digits, exponent


def _java_two_digit_rule(x: float, digit: str, exponent: int) -> tuple[str, int]:
    """Java prefers a closer 2-digit form over a 1-digit one (e.g. 4.9E-324).

    This only changes anything for subnormal doubles, where one digit is
    enough to identify the value but lands visibly far from it.
    """
    candidate = f"{x:.1e}"
    if float(candidate) != x:
        return digit, exponent
    exact = Fraction(x)
    one_digit = Fraction(int(digit)) * Fraction(10) ** exponent
    if abs(Fraction(candidate) - exact) < abs(one_digit - exact):
        mantissa, _, exp_text = candidate.partition("e")
        return mantissa.replace(".", "").rstrip("0") or "0", int(exp_text)
    return digit, exponent


# --------------------------------------------------------------------------
# Transport between processes
# --------------------------------------------------------------------------


def encode(histogram: HdrHistogram) -> str:
    """Base64 of the V2 compressed encoding, as OMB workers send histograms."""
    encoded: bytes = histogram.encode()
    return encoded.decode("ascii")


def decode(encoded: str | bytes) -> HdrHistogram:
    """Decode a histogram from base64 text, or from raw compressed V2 bytes.

    Raw bytes as Java's `encodeIntoCompressedByteBuffer` writes them start
    with the 8-byte compressed header, which `hdrh` does not strip on its
    non-base64 path, so it is stripped here. Anything else raises
    `ValueError` saying what is wrong, not a zlib or cookie error.
    """
    try:
        if isinstance(encoded, bytes) and encoded[:4] == _COMPRESSED_HEADER_COOKIE:
            (length,) = struct.unpack(">I", encoded[4:8])
            if length != len(encoded) - 8:
                raise ValueError(
                    f"compressed histogram says {length} bytes follow its "
                    f"header but {len(encoded) - 8} do"
                )
            return HdrHistogram.decode(encoded[8:], b64_wrap=False)
        return HdrHistogram.decode(encoded)
    except (
        binascii.Error,
        zlib.error,
        HdrCookieException,
        HdrLengthException,
        struct.error,
    ) as err:
        raise ValueError(
            "not an HdrHistogram V2 compressed encoding (base64 text starting "
            f"'HISTF', or raw bytes with cookie 0x{_COMPRESSED_COOKIE:08x}): "
            f"{type(err).__name__}: {err}"
        ) from err


def add_into(target: HdrHistogram, source: HdrHistogram) -> int:
    """Add `source`'s counts into `target`; return how many were clamped.

    Same geometry: a straight array addition. Different geometry (another
    range or precision): each occupied source bucket is recorded at its
    lowest equivalent value, as Java's `add` does, except that values above
    the target's highest trackable value are clamped to it instead of
    throwing, so no sample is lost. The clamped count is returned.
    """
    same_geometry = (
        target.bucket_count == source.bucket_count
        and target.sub_bucket_count == source.sub_bucket_count
        and target.unit_magnitude == source.unit_magnitude
        and target.word_size == source.word_size
    )
    if same_geometry:
        target.add(source)
        return 0
    source_counts = _counts_view(source)
    indices = np.flatnonzero(source_counts).astype(np.int64)
    lowest, _ = _bucket_edges(source, indices)
    values_us, _, overflow = _clamp(lowest, int(target.highest_trackable_value))
    counts = source_counts[indices].astype(np.int64)
    _record_counts(target, values_us, counts)
    return int(counts[overflow].sum())


def merge_encoded(
    encoded: Iterable[str | bytes], factory: HistogramFactory = new_publish_histogram
) -> HdrHistogram:
    """Decode each histogram and add them all into a fresh `factory()` one.

    Samples beyond the fresh histogram's range are clamped to its ceiling
    (see `add_into`); call `add_into` directly to learn how many.
    """
    merged = factory()
    for item in encoded:
        add_into(merged, decode(item))
    return merged
