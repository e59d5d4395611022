"""The VPA recommender's histograms, ported from kubernetes/autoscaler
(vertical-pod-autoscaler/pkg/recommender/util/histogram*.go and decaying_histogram.go).

- Exponential buckets: bucket `b` starts at `first * (ratio**b - 1) / (ratio - 1)`; the bucket
  count is `ceil(log_ratio(max * (ratio - 1) / first + 1)) + 1`. CPU uses first=0.01 core,
  ratio=1.05, max=1000 cores; memory first=1e7 bytes, ratio=1.05, max=1e12 bytes.
- Decay: a sample at time t weighs `weight * 2**((t - reference) / half_life)`; when t passes
  `reference + 100 half-lives` the reference moves to t (rounded to a half-life) and every weight
  is rescaled, exactly as VPA does to keep the exponent small.
- Percentile: the end of the first bucket where the running weight reaches p * total (the start
  of the last bucket if that is where it lands); 0 for an empty histogram.

This is a mutable accumulator by design (like the original); policies keep it local.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kopilot.model import series

EPSILON = 1e-4
"""Weights below this count as empty (VPA's `epsilon` for both CPU and memory histograms)."""
MAX_DECAY_EXPONENT = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class ExponentialBuckets:
    """VPA's `exponentialHistogramOptions`."""

    first_bucket_size: float
    ratio: float
    max_value: float

    @property
    def num_buckets(self) -> int:
        r = self.ratio
        return math.ceil(math.log(self.max_value * (r - 1) / self.first_bucket_size + 1, r)) + 1

    def find_bucket(self, value: float) -> int:
        if value < self.first_bucket_size:
            return 0
        r = self.ratio
        bucket = int(math.log(value * (r - 1) / self.first_bucket_size + 1, r))
        return min(bucket, self.num_buckets - 1)

    def bucket_start(self, bucket: int) -> float:
        if bucket == 0:
            return 0.0
        return self.first_bucket_size * (self.ratio**bucket - 1) / (self.ratio - 1)


CPU_BUCKETS = ExponentialBuckets(first_bucket_size=0.01, ratio=1.05, max_value=1000.0)
MEMORY_BUCKETS = ExponentialBuckets(first_bucket_size=1e7, ratio=1.05, max_value=1e12)


class DecayingHistogram:
    """VPA's `decayingHistogram`: a histogram whose samples lose half their weight per half-life."""

    def __init__(self, buckets: ExponentialBuckets, *, half_life_s: float = 24 * 3600.0) -> None:
        self.buckets = buckets
        self.half_life_s = half_life_s
        self.weights = np.zeros(buckets.num_buckets, dtype=np.float64)
        self.total = 0.0
        self.min_bucket = buckets.num_buckets - 1
        self.max_bucket = 0
        self.reference = 0.0

    def is_empty(self) -> bool:
        return bool(self.weights[self.min_bucket] < EPSILON)

    def add(self, value: float, weight: float, time: float) -> None:
        """Add a sample (a negative weight subtracts one, as VPA's SubtractSample)."""
        self._add_raw(value, weight * self._decay_factor(time))

    def _add_raw(self, value: float, weight: float) -> None:
        bucket = self.buckets.find_bucket(value)
        self.weights[bucket] += weight
        self.total += weight
        if weight > 0:
            self.min_bucket = min(self.min_bucket, bucket)
            self.max_bucket = max(self.max_bucket, bucket)
        else:
            if self.weights[bucket] < EPSILON:
                self.total -= self.weights[bucket]
                self.weights[bucket] = 0.0
            self._update_min_max()

    def _decay_factor(self, time: float) -> float:
        if time > self.reference + self.half_life_s * MAX_DECAY_EXPONENT:
            self._shift_reference(time)
        return float(2.0 ** ((time - self.reference) / self.half_life_s))

    def _shift_reference(self, time: float) -> None:
        new_reference = round(time / self.half_life_s) * self.half_life_s
        exponent = round((self.reference - new_reference) / self.half_life_s)
        self.weights *= 2.0**exponent
        self.total *= 2.0**exponent
        self.reference = new_reference
        self._update_min_max()

    def _update_min_max(self) -> None:
        n = self.buckets.num_buckets
        self.min_bucket, self.max_bucket = n - 1, 0
        nonempty = np.flatnonzero(self.weights >= EPSILON)
        if len(nonempty):
            self.min_bucket, self.max_bucket = int(nonempty[0]), int(nonempty[-1])

    def percentile(self, p: float) -> float:
        if self.is_empty():
            return 0.0
        threshold = p * self.total
        partial = 0.0
        bucket = self.min_bucket
        while bucket < self.max_bucket:
            partial += float(self.weights[bucket])
            if partial >= threshold:
                break
            bucket += 1
        if bucket < self.buckets.num_buckets - 1:
            return self.buckets.bucket_start(bucket + 1)
        return self.buckets.bucket_start(bucket)


def cpu_histogram(
    usage: series.Series, *, request_cores: float, half_life_s: float = 24 * 3600.0
) -> DecayingHistogram:
    """VPA's aggregate CPU histogram: each sample weighted by max(request, 0.1 core)."""
    h = DecayingHistogram(CPU_BUCKETS, half_life_s=half_life_s)
    weight = max(request_cores, 0.1)
    for t, v in zip(usage.times.tolist(), usage.values.tolist(), strict=True):
        if math.isfinite(v):
            h.add(v, weight, t)
    return h


def memory_peaks_histogram(
    usage: series.Series,
    *,
    interval_s: float = 24 * 3600.0,
    half_life_s: float = 24 * 3600.0,
    buckets: ExponentialBuckets = MEMORY_BUCKETS,
) -> DecayingHistogram:
    """VPA's memory-peaks histogram, following `ContainerState.addMemorySample`: one sample per
    aggregation interval (24 h), timestamped at the interval's end, weight 1. A sample past the
    interval's end opens the next interval and is added as its peak; a later, larger sample
    inside the interval replaces the peak (SubtractSample, then AddSample) unless the peak so
    far is 0, which VPA leaves alone."""
    h = DecayingHistogram(buckets, half_life_s=half_life_s)
    window_end: float | None = None
    peak = 0.0
    for t, v in zip(usage.times.tolist(), usage.values.tolist(), strict=True):
        if not math.isfinite(v):
            continue
        if window_end is None:
            window_end = t
        if t < window_end:
            if peak != 0 and v > peak:
                h.add(peak, -1.0, window_end)
                h.add(v, 1.0, window_end)
                peak = v
        else:
            shift = math.floor((t - window_end) / interval_s) * interval_s + interval_s
            window_end += shift
            h.add(v, 1.0, window_end)
            peak = v
    return h
