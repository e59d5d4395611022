"""The detectors the NAB benchmark runs: kopilot's ensemble, its members, and baselines."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from kopilot.health import streaming, zscores


class Null:
    """Never fires: NAB's null detector."""

    def __init__(self, n_streams: int) -> None:
        self._n = n_streams

    @property
    def streams(self) -> int:
        return self._n

    def update(self, values: streaming.FloatArray) -> streaming.FloatArray:
        return np.zeros(self._n)


DETECTORS: dict[str, Callable[[int], streaming.Detector]] = {
    "null": Null,
    "static threshold": zscores.StaticThreshold,
    "rolling z-score": zscores.RollingZScore,
}
