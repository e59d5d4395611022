"""A metric series: sample times and values, read-only, as numpy arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, kw_only=True)
class Series:
    """Samples of one metric stream, times in seconds (ascending), values as floats (NaN = missing)."""

    times: FloatArray
    values: FloatArray

    @staticmethod
    def of(times: npt.ArrayLike, values: npt.ArrayLike) -> Series:
        t = np.array(times, dtype=np.float64)
        v = np.array(values, dtype=np.float64)
        if t.shape != v.shape or t.ndim != 1:
            raise ValueError(
                f"series: times {t.shape} and values {v.shape} must be equal 1-D shapes"
            )
        t.flags.writeable = False
        v.flags.writeable = False
        return Series(times=t, values=v)

    @staticmethod
    def empty() -> Series:
        return Series.of([], [])

    def __len__(self) -> int:
        return int(self.times.shape[0])

    def since(self, start: float) -> Series:
        """The samples at or after `start` (a view, no copy)."""
        i = int(np.searchsorted(self.times, start, side="left"))
        return Series(times=self.times[i:], values=self.values[i:])

    def last(self) -> float | None:
        return float(self.values[-1]) if len(self) else None
