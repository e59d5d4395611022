"""The VPA histogram port, checked against values worked out from the Go source's formulas."""

from __future__ import annotations

import math

import pytest

from kopilot.cost import histograms
from kopilot.model import series


def test_cpu_bucket_geometry() -> None:
    b = histograms.CPU_BUCKETS
    # ceil(log_1.05(1000 * 0.05 / 0.01 + 1)) + 1 = ceil(174.57) + 1
    assert b.num_buckets == 176
    assert b.find_bucket(0.005) == 0
    assert b.find_bucket(0.01) == 1
    assert b.bucket_start(1) == pytest.approx(0.01)
    assert b.bucket_start(2) == pytest.approx(0.01 + 0.0105)
    assert b.find_bucket(1e9) == b.num_buckets - 1
    for v in (0.013, 0.5, 3.7, 250.0):
        i = b.find_bucket(v)
        assert b.bucket_start(i) <= v < b.bucket_start(i + 1)


def test_percentile_returns_the_end_of_the_bucket() -> None:
    h = histograms.DecayingHistogram(histograms.CPU_BUCKETS)
    for v in [0.1] * 9 + [1.0]:
        h.add(v, 1.0, 0.0)
    b = histograms.CPU_BUCKETS
    assert h.percentile(0.9) == pytest.approx(b.bucket_start(b.find_bucket(0.1) + 1))
    assert h.percentile(1.0) == pytest.approx(b.bucket_start(b.find_bucket(1.0) + 1))
    assert histograms.DecayingHistogram(b).percentile(0.9) == 0.0


def test_a_sample_one_half_life_later_weighs_double() -> None:
    day = 86400.0
    h = histograms.DecayingHistogram(histograms.CPU_BUCKETS, half_life_s=day)
    h.add(0.1, 1.0, 0.0)
    h.add(1.0, 1.0, day)
    # weights 1 and 2: the median is in the 1.0 bucket.
    assert h.percentile(0.5) > 0.9
    assert h.total == pytest.approx(3.0)


def test_reference_shift_keeps_ratios() -> None:
    day = 86400.0
    h = histograms.DecayingHistogram(histograms.CPU_BUCKETS, half_life_s=day)
    h.add(0.1, 1.0, 1.7e9)  # far past reference 0: VPA shifts the reference first
    h.add(1.0, 1.0, 1.7e9 + day)
    assert h.reference == round(1.7e9 / day) * day
    w = h.weights[h.buckets.find_bucket(1.0)] / h.weights[h.buckets.find_bucket(0.1)]
    assert w == pytest.approx(2.0)


def test_memory_peaks_one_sample_per_day() -> None:
    day = 86400.0
    times = [i * 3600.0 for i in range(72)]
    values = [1e9 if (i // 24) == 1 and i % 24 == 5 else 2e8 for i in range(72)]
    h = histograms.memory_peaks_histogram(series.Series.of(times, values), half_life_s=day)
    # three daily peaks (2e8, 1e9, 2e8), each weight 1 decayed by its window end.
    assert math.isclose(sum(h.weights > 0), 2)
    assert h.percentile(1.0) > 1e9
