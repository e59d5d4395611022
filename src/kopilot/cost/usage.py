"""The usage history of one container, as the cost policies see it.

A `ContainerUsage` holds what a container used and asked for over a window, as series; the CLI
builds them from Prometheus (`kopilot.metrics`) and the benchmarks from trace files. Units:
CPU in cores, memory in bytes, GPU busy as a fraction (0..1) of the GPUs the container holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from kopilot.model import errors, series

STALENESS_S = 300.0
"""A sample stands for at most this long (Prometheus' default lookback delta)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    """A time window [start, end) cut into steps of `step` seconds."""

    start: float
    end: float
    step: float

    def __post_init__(self) -> None:
        if not self.end > self.start:
            raise errors.InvalidInputError(
                f"window: end ({self.end}) must be after start ({self.start})"
            )
        if not self.step > 0:
            raise errors.InvalidInputError(f"window: step must be > 0, got {self.step}")

    @property
    def hours(self) -> float:
        return (self.end - self.start) / 3600.0

    def grid(self) -> series.FloatArray:
        """The start of every step inside the window."""
        return np.arange(self.start, self.end, self.step, dtype=np.float64)


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainerUsage:
    """One container of one pod: identity, what it asked for and what it used.

    `gpus` is the GPU share the container holds (whole GPUs, a time-sliced fraction, MIG slices
    priced by their share: see `prices.gpu_share`). `notes` say what data was missing.
    """

    namespace: str
    pod: str
    container: str
    workload: str
    node: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    cpu: series.Series = field(default_factory=series.Series.empty)
    memory: series.Series = field(default_factory=series.Series.empty)
    gpu_busy: series.Series = field(default_factory=series.Series.empty)
    gpu_memory: series.Series = field(default_factory=series.Series.empty)
    """GPU framebuffer used, bytes (summed over the container's GPUs)."""
    cpu_request: series.Series = field(default_factory=series.Series.empty)
    memory_request: series.Series = field(default_factory=series.Series.empty)
    gpus: float = 0.0
    gpu_model: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def pod_key(self) -> str:
        return f"{self.namespace}/{self.pod}"

    @property
    def workload_key(self) -> str:
        return f"{self.namespace}/{self.workload}"


def constant(value: float, *, start: float, end: float, step: float = 60.0) -> series.Series:
    """A flat series from `start` to `end` (for requests that did not change)."""
    times = np.arange(start, end, step, dtype=np.float64)
    return series.Series.of(times, np.full(times.shape, value, dtype=np.float64))


def on_grid(
    s: series.Series, grid: series.FloatArray, *, staleness: float = STALENESS_S
) -> series.FloatArray:
    """The series' value at each grid time: the last sample at or before it, NaN when there is
    none within `staleness` seconds (the pod was not there, or the sample is missing)."""
    out = np.full(grid.shape, np.nan, dtype=np.float64)
    if len(s) == 0:
        return out
    idx = np.searchsorted(s.times, grid, side="right") - 1
    ok = idx >= 0
    safe = np.where(ok, idx, 0)
    fresh = ok & (grid - s.times[safe] <= staleness)
    out[fresh] = s.values[safe[fresh]]
    return out


def finite(s: series.Series) -> series.Series:
    """The samples whose values are finite (NaN/Inf dropped)."""
    keep = np.isfinite(s.values)
    return series.Series.of(s.times[keep], s.values[keep])
