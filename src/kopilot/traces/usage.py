"""Usage samples in wide CSV form: one time column, one column per real series.

Two are bundled (src/kopilot/data/SOURCE.md says where each comes from):

- `genai_gpu_duty_cycle.csv`: GPU duty cycle (%) of eight pods of the Alibaba GenTD26 trace,
  one row every 57 s over 22.8 h, on the same anonymised clock as `genai_qps.csv`;
- `crane_cpu_24h.csv`: CPU of two real applications from Crane's DSP test series, one row a
  minute over 24 h (values are the series' own; only their shape is used).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kopilot.traces import csvs


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageTrace:
    """`values[k, j]` is series `names[j]` at `times[k]` (seconds on the trace's own clock)."""

    times: np.ndarray
    names: tuple[str, ...]
    values: np.ndarray
    span_s: float
    """The trace's length, counting its last sample's step (the period it repeats with)."""

    def at(self, t: float) -> np.ndarray:
        """Every series' value at `t` seconds after the first sample (step-hold, repeating)."""
        rel = (t % self.span_s) + float(self.times[0])
        k = int(np.clip(np.searchsorted(self.times, rel, side="right") - 1, 0, len(self.times) - 1))
        return np.asarray(self.values[k])


def load(path: Path, time_column: str) -> UsageTrace:
    """Read a wide CSV; every column but `time_column` is one series of finite, non-negative values."""
    times: list[float] = []
    rows: list[list[float]] = []
    names: tuple[str, ...] = ()
    for line, row in csvs.rows(path, (time_column,)):
        if not names:
            names = tuple(c for c in row if c != time_column)
            if not names:
                raise csvs.TraceError(f"{path}, line 1: no series besides {time_column!r}")
        times.append(csvs.number(path, line, row, time_column, minimum=0))
        rows.append([csvs.number(path, line, row, c, minimum=0) for c in names])
    if not times:
        raise csvs.TraceError(f"{path}: no data rows")
    order = np.argsort(np.asarray(times), kind="stable")
    t = np.asarray(times, dtype=np.float64)[order]
    step = float(np.median(np.diff(t))) if len(t) > 1 else 60.0
    return UsageTrace(
        times=t,
        names=names,
        values=np.asarray(rows, dtype=np.float64)[order],
        span_s=float(t[-1] - t[0]) + step,
    )


__all__ = ["UsageTrace", "load"]
