"""Quiet after a detection: a score only passes when it beats the stream's recent peak.

NAB counts only the first detection in a window and charges every detection outside one, so
after a detector has fired it should stay quiet for a while. Without a fixed threshold to know
when it "fired", this filter passes a score only if it is higher than every score of the last few
points (a decaying peak with half-life `hold`); anything else becomes 0. Whatever threshold is
later applied, a burst of high scores then yields one detection, not dozens.
"""

from __future__ import annotations

import math

import numpy as np

from kopilot.health import streaming


class PeakFilter:
    """Pass a score only when it exceeds the decaying peak of the scores before it."""

    def __init__(self, n_streams: int, *, hold: int = 100) -> None:
        self._n = n_streams
        self._decay = math.exp(-math.log(2.0) / hold)
        self._peak = np.zeros(n_streams)

    @property
    def streams(self) -> int:
        return self._n

    def update(self, scores: streaming.FloatArray) -> streaming.FloatArray:
        s = np.nan_to_num(scores, nan=0.0)
        passed = np.where(s > self._peak, s, 0.0)
        self._peak = np.maximum(self._peak * self._decay, s)
        return passed
