"""Quiet after a detection: a score only passes when it beats the stream's recent peak.

NAB counts only the first detection in a window and charges every detection outside one, so
after a detector has fired it should stay quiet for a while. Without a fixed threshold to know
when it "fired", this filter works at every threshold at once:

- a score passes only if it is higher than the stream's decaying peak (half-life `hold` points)
  of all scores before it; anything else becomes 0;
- after a score has passed, for the next `quiet` points a score passes only if it is also more
  than `gamma` times the one that passed (a slowly rising burst yields one detection, a much
  stronger second event still gets through).
"""

from __future__ import annotations

import math

import numpy as np

from kopilot.health import streaming


class PeakFilter:
    """Pass a score only when it beats the decaying peak and the quiet period allows it."""

    def __init__(
        self, n_streams: int, *, hold: int = 300, quiet: int = 50, gamma: float = 1.5
    ) -> None:
        self._n = n_streams
        self._decay = math.exp(-math.log(2.0) / hold)
        self._quiet = quiet
        self._gamma = gamma
        self._peak = np.zeros(n_streams)
        self._age = np.full(n_streams, np.iinfo(np.int64).max // 2, dtype=np.int64)
        self._last = np.zeros(n_streams)

    @property
    def streams(self) -> int:
        return self._n

    def update(self, scores: streaming.FloatArray) -> streaming.FloatArray:
        s = np.nan_to_num(scores, nan=0.0)
        ok = (s > self._peak) & ((self._age > self._quiet) | (s > self._gamma * self._last))
        self._last = np.where(ok, s, self._last)
        self._age = np.where(ok, 0, self._age + 1)
        self._peak = np.maximum(self._peak * self._decay, s)
        return np.where(ok, s, 0.0)
