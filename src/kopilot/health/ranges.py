"""Spatial anomaly: a value outside the range the stream has ever shown.

Numenta's NAB detector pairs its sequence memory with exactly this check: a value beyond the
running minimum or maximum is anomalous whatever the temporal model thinks. The raw surprise is
the exceedance relative to the range so far, `10 * max(0, (x - hi) / (hi - lo), (lo - x) / (hi -
lo))`; within the range it is 0. Constant memory per stream: min, max and a count.
"""

from __future__ import annotations

import numpy as np

from kopilot.health import streaming


class RangeExceedance:
    """How far beyond its own running [min, max] each stream's newest value lies."""

    def __init__(self, n_streams: int, *, learning: int = 100) -> None:
        self._n = n_streams
        self._learning = learning
        self._hi = np.full(n_streams, -np.inf)
        self._lo = np.full(n_streams, np.inf)
        self._count = np.zeros(n_streams, dtype=np.int64)

    @property
    def streams(self) -> int:
        return self._n

    def surprise(self, values: streaming.FloatArray) -> streaming.FloatArray:
        seen = ~np.isnan(values)
        x = np.where(seen, values, 0.0)
        ready = seen & (self._count >= self._learning)
        span = np.where(ready, np.maximum(self._hi - self._lo, 1e-9), 1.0)
        hi = np.where(ready, self._hi, 0.0)
        lo = np.where(ready, self._lo, 0.0)
        beyond = np.maximum(np.maximum((x - hi) / span, (lo - x) / span), 0.0)
        out = np.where(ready, 10.0 * beyond, 0.0)
        self._hi = np.where(seen, np.maximum(self._hi, x), self._hi)
        self._lo = np.where(seen, np.minimum(self._lo, x), self._lo)
        self._count = self._count + seen
        return out

    def update(self, values: streaming.FloatArray) -> streaming.FloatArray:
        s = self.surprise(values)
        return s / (s + 1.0)
