"""HTM-style anomaly likelihood, vectorised across streams.

Numenta's detector owes much of its NAB score to this post-processing of a raw anomaly score: the
average raw score over the last few points is compared with the longer-term distribution of that
average, and the Gaussian tail probability of the recent average is the anomaly likelihood. A
stream whose raw score is always high (a noisy series) is thereby not anomalous; one whose raw
score jumps above its own habit is.

Constant memory per stream: a ring of the last `short` raw scores and exponentially weighted
moments (window ~ `long`) of their average.
"""

from __future__ import annotations

import numpy as np

from kopilot.health import streaming


class AnomalyLikelihood:
    """Turn raw scores (any non-negative scale) into likelihood scores in [0, 1)."""

    def __init__(
        self, n_streams: int, *, short: int = 10, long: int = 2000, learning: int = 300
    ) -> None:
        self._n = n_streams
        self._ring = np.zeros((short, n_streams))
        self._pos = np.zeros(n_streams, dtype=np.int64)
        self._alpha = 1.0 / long
        self._learning = learning
        self._count = np.zeros(n_streams, dtype=np.int64)
        self._mean = np.zeros(n_streams)
        self._var = np.zeros(n_streams)
        self._cols = np.arange(n_streams)

    @property
    def streams(self) -> int:
        return self._n

    def update(self, raw: streaming.FloatArray) -> streaming.FloatArray:
        """Likelihood score of the newest raw scores (NaN = no point for that stream)."""
        seen = ~np.isnan(raw)
        short = self._ring.shape[0]
        slot = self._pos % short
        old = self._ring[slot, self._cols]
        self._ring[slot, self._cols] = np.where(seen, raw, old)
        self._pos = self._pos + seen
        filled = np.minimum(self._pos, short)
        avg = self._ring.sum(axis=0) / np.maximum(filled, 1)
        std = np.sqrt(self._var) + 1e-6 * (1.0 + np.abs(self._mean))
        z = (avg - self._mean) / std
        ready = seen & (self._count >= self._learning)
        score = np.where(ready, streaming.surprise_score(streaming.log10_tail(z)), 0.0)
        a = np.maximum(self._alpha, 1.0 / (self._count + 1.0))
        d = avg - self._mean
        self._mean = self._mean + np.where(seen, a * d, 0.0)
        self._var = np.where(seen, (1.0 - a) * (self._var + a * d * d), self._var)
        self._count = self._count + seen
        return score
