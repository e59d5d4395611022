"""Streaming detectors: one update step scores one new point of every stream at once.

A detector holds a fixed amount of state per stream (numpy arrays whose length is the number of
streams), so memory and time per point are constant. `update(values)` takes the newest value of
each stream (NaN where a stream has no new point this step: its state is left as it was and its
score is 0) and returns one anomaly score per stream in [0, 1].
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_LOG10 = math.log(10.0)
_LOG_POLY0 = math.log(0.254829592 - 0.284496736 + 1.421413741 - 1.453152027 + 1.061405429)


class Detector(Protocol):
    """An online detector over `streams` parallel series."""

    @property
    def streams(self) -> int: ...

    def update(self, values: FloatArray) -> FloatArray:
        """Score the newest value of every stream (NaN = no point); returns scores in [0, 1]."""
        ...


def run(detector: Detector, matrix: FloatArray) -> FloatArray:
    """Feed a (time, streams) matrix row by row; returns the (time, streams) scores."""
    if matrix.ndim != 2 or matrix.shape[1] != detector.streams:
        raise ValueError(
            f"matrix of shape {matrix.shape} does not fit a detector of {detector.streams} streams"
        )
    out = np.zeros(matrix.shape, dtype=np.float64)
    for t in range(matrix.shape[0]):
        out[t] = detector.update(matrix[t])
    return out


def log10_tail(z: FloatArray) -> FloatArray:
    """log10 of the Gaussian upper tail Q(z) = P(N(0,1) > z), stable far into the tail.

    Uses the Abramowitz-Stegun 7.1.26 erfc approximation (|error| < 1.5e-7 in absolute terms) in
    log form, so that Q(40) is about 1e-349 instead of 0.
    """
    x = np.abs(z) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    # erfc(x) ~ poly * exp(-x^2) for x >= 0; dividing by poly(0) makes erfc(0) exactly 1.
    log_erfc = np.log(poly) - _LOG_POLY0 - x * x
    upper = np.minimum((log_erfc - math.log(2.0)) / _LOG10, math.log10(0.5))  # log10 Q(|z|)
    lower = np.log10(np.maximum(1.0 - 10.0**upper, 1e-300))  # log10 Q(-|z|) = log10(1 - Q(|z|))
    return np.where(z >= 0, upper, lower)


def two_sided_surprise(z: FloatArray) -> FloatArray:
    """`-log10` of the two-sided tail probability P(|Z| >= |z|) (0 where it is not surprising)."""
    return np.maximum(-(log10_tail(np.abs(z)) + math.log10(2.0)), 0.0)


def surprise_score(log10_p: FloatArray, scale: float = 5.0) -> FloatArray:
    """Map a tail probability (as log10 p) to a score in [0, 1) without saturating.

    surprise = -log10 p; score = surprise / (surprise + scale): p = 1e-5 scores 0.5 with scale 5.
    """
    surprise = np.maximum(-log10_p, 0.0)
    return surprise / (surprise + scale)


def likelihood(score: FloatArray, scale: float = 5.0) -> FloatArray:
    """Invert `surprise_score`: the anomaly likelihood `1 - p` behind a score in [0, 1).

    A score of 0.5 (scale 5) is surprise 5, p = 1e-5, likelihood 0.99999.
    """
    s = np.clip(score, 0.0, 1.0 - 1e-12)
    return 1.0 - 10.0 ** (-scale * s / (1.0 - s))
