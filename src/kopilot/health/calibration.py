"""Calibrate any detector's surprise into "how rare is this score for this stream".

Each member of an ensemble speaks its own dialect: a z-score's surprise on a bursty stream is
large every day, a context detector's surprise is large only for new contexts. Before members are
combined, each score is replaced by its empirical upper-tail probability under the stream's own
history of that member's scores: `p = (#past scores >= s + 1) / (#past scores + 1)`, reported as
the surprise `-log10 p`. A score is then anomalous only if it is rare for that stream, whatever
its scale, and the scores of different members and streams can share one threshold.

A raw surprise is capped at `MAX_SURPRISE` (308, a p of 1e-308) before ranking.

Constant memory per stream: a histogram of past scores over fixed, log-spaced bins (optionally
decaying with half-life `half_life` points so that old habits fade).
"""

from __future__ import annotations

import math

import numpy as np

from kopilot.health import streaming

EDGES = np.r_[0.0, np.geomspace(0.05, 60.0, 47)]
_TIEBREAK = 0.01  # within a histogram bin, a larger raw surprise still ranks higher
# -log10 of the smallest normal double: a rarer tail is not a probability a float can hold. A
# member whose spread has collapsed (a constant stretch ends) can report 1e12 or infinity; capped,
# it still ranks first, but it no longer sets a peak that hides the next ~12,000 points.
MAX_SURPRISE = 308.0


class EmpiricalTail:
    """Per-stream histogram calibration of a non-negative surprise."""

    def __init__(
        self, n_streams: int, *, learning: int = 150, half_life: float | None = 3000.0
    ) -> None:
        self._n = n_streams
        self._hist = np.zeros((n_streams, len(EDGES) + 1))
        self._total = np.zeros(n_streams)
        self._learning = learning
        self._decay = math.exp(-math.log(2.0) / half_life) if half_life else 1.0
        self._rows = np.arange(n_streams)
        self._count = np.zeros(n_streams, dtype=np.int64)

    @property
    def streams(self) -> int:
        return self._n

    def update(self, surprise: streaming.FloatArray) -> streaming.FloatArray:
        """Calibrated surprise (`-log10` empirical tail) of each stream's newest raw surprise."""
        seen = ~np.isnan(surprise)
        s = np.where(seen, np.clip(surprise, 0.0, MAX_SURPRISE), 0.0)
        b = np.searchsorted(EDGES, s, side="right")
        at_least = np.cumsum(self._hist[:, ::-1], axis=1)[:, ::-1]
        p = (at_least[self._rows, b] + 1.0) / (self._total + 1.0)
        ready = seen & (self._count >= self._learning)
        out = np.where(ready, -np.log10(p) + _TIEBREAK * s, 0.0)
        if self._decay < 1.0:
            self._hist *= self._decay
            self._total *= self._decay
        self._hist[self._rows, b] += seen
        self._total += seen
        self._count += seen
        return out
