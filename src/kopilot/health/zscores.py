"""Baselines: a rolling (exponentially weighted) z-score and a static, calibrate-once threshold."""

from __future__ import annotations

import math

import numpy as np

from kopilot.health import streaming


class RollingZScore:
    """|x - mean| / std with an exponentially weighted mean and variance (window ~ `window`).

    With `smoothing` > 1 the value is first smoothed (exponential average over ~`smoothing`
    points), so that a short burst counts more than a single odd point. The score is the two-sided
    Gaussian tail of the z-score, mapped by `streaming.surprise_score`; `surprise` gives the raw
    `-log10` tail instead. The first `warmup` points of each stream only learn (score 0).
    """

    def __init__(
        self, n_streams: int, *, window: int = 200, warmup: int = 100, smoothing: float = 1.0
    ) -> None:
        self._n = n_streams
        self._alpha = 1.0 / window
        self._smoothing = 1.0 / smoothing
        self._smooth = np.zeros(n_streams)
        self._warmup = warmup
        self._count = np.zeros(n_streams, dtype=np.int64)
        self._mean = np.zeros(n_streams)
        self._var = np.zeros(n_streams)

    @property
    def streams(self) -> int:
        return self._n

    def zscores(self, values: streaming.FloatArray) -> streaming.FloatArray:
        """Signed z-score of each value against the state before it; updates the state."""
        seen = ~np.isnan(values)
        if self._smoothing < 1.0:
            a0 = np.maximum(self._smoothing, 1.0 / (self._count + 1.0))
            step = np.where(seen, a0 * (np.nan_to_num(values) - self._smooth), 0.0)
            self._smooth = self._smooth + step
            values = np.where(seen, self._smooth, np.nan)
        x = np.where(seen, values, self._mean)
        std = np.sqrt(self._var) + 1e-9 * (1.0 + np.abs(self._mean))
        z = np.where(seen & (self._count >= self._warmup), (x - self._mean) / std, 0.0)
        # Warm start: plain averages over the first points, then exponential weighting.
        a = np.maximum(self._alpha, 1.0 / (self._count + 1.0))
        d = x - self._mean
        self._mean = self._mean + np.where(seen, a * d, 0.0)
        self._var = np.where(seen, (1.0 - a) * (self._var + a * d * d), self._var)
        self._count = self._count + seen
        return z

    def surprise(self, values: streaming.FloatArray) -> streaming.FloatArray:
        """`-log10` of the two-sided tail probability of each value's z-score."""
        z = self.zscores(values)
        return streaming.two_sided_surprise(z)

    def update(self, values: streaming.FloatArray) -> streaming.FloatArray:
        return streaming.surprise_score(-self.surprise(values))


class StaticThreshold:
    """A fixed rule calibrated once: mean and std of the first `calibration` points, then frozen.

    Like a hand-written alert rule (`value > mean + k * std`), with k chosen by the threshold.
    """

    def __init__(self, n_streams: int, *, calibration: int = 300) -> None:
        self._n = n_streams
        self._calibration = calibration
        self._count = np.zeros(n_streams, dtype=np.int64)
        self._sum = np.zeros(n_streams)
        self._sum_sq = np.zeros(n_streams)

    @property
    def streams(self) -> int:
        return self._n

    def update(self, values: streaming.FloatArray) -> streaming.FloatArray:
        seen = ~np.isnan(values)
        learning = seen & (self._count < self._calibration)
        x = np.where(seen, values, 0.0)
        self._sum += np.where(learning, x, 0.0)
        self._sum_sq += np.where(learning, x * x, 0.0)
        self._count = self._count + seen
        n = np.maximum(np.minimum(self._count, self._calibration), 1)
        mean = self._sum / n
        std = np.sqrt(np.maximum(self._sum_sq / n - mean * mean, 0.0)) + 1e-9 * (1 + abs(mean))
        z = np.where(seen & (self._count > self._calibration), np.abs(x - mean) / std, 0.0)
        return streaming.surprise_score(streaming.log10_tail(z) + math.log10(2.0))
