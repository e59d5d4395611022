"""Replay: what a recommendation would have wasted and broken on usage it did not see.

Train a strategy on the first part of a series, then hold its recommendation against the rest:

- waste: the integral of max(0, level - usage), in resource-hours (core-, GiB-, GPU-hours);
- OOM-kills (memory): each time usage rises above the level (memory limit = request, as krr and
  VPA recommend), one kill; the container is assumed back once usage falls below again;
- throttling (CPU): every sample interval in which usage exceeds the level (the container gets
  only its request when the node is packed to its requests: CPU shares);
- GPU contention: the same count for the GPU share.

`hindsight_bound` is the yardstick beside them: the least waste any static levels could have had
on the evaluated usage, with a given number of intervals over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kopilot.cost import rightsizing
from kopilot.model import series


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """The replayed effect of one level on one usage series."""

    waste_hours: float
    """Resource-hours reserved but unused."""
    short_hours: float
    """Resource-hours used above the level (unmet, or borrowed from the node's slack)."""
    over_intervals: int
    """Sample intervals in which usage exceeded the level (throttling / contention)."""
    crossings: int
    """Times usage rose above the level (OOM-kills for memory)."""
    hours: float


def split(s: series.Series, fraction: float) -> tuple[series.Series, series.Series]:
    """The first `fraction` of the series' time span, and the rest."""
    if len(s) == 0:
        return s, s
    cut = s.times[0] + (s.times[-1] - s.times[0]) * fraction
    i = int(np.searchsorted(s.times, cut, side="right"))
    return (
        series.Series(times=s.times[:i], values=s.values[:i]),
        series.Series(times=s.times[i:], values=s.values[i:]),
    )


def replay(level: rightsizing.Level, usage: series.Series) -> Outcome:
    """Hold `level` against `usage`; each sample stands until the next (the last for the median step)."""
    ok = np.isfinite(usage.values)
    t, v = usage.times[ok], usage.values[ok]
    if len(t) == 0:
        return Outcome(waste_hours=0.0, short_hours=0.0, over_intervals=0, crossings=0, hours=0.0)
    steps = np.diff(t)
    last = float(np.median(steps)) if len(steps) else 0.0
    dt = np.append(steps, last) / 3600.0
    lv = level.at(t)
    over = v > lv
    rising = over & ~np.concatenate(([False], over[:-1]))
    return Outcome(
        waste_hours=float(np.sum(np.maximum(lv - v, 0.0) * dt)),
        short_hours=float(np.sum(np.maximum(v - lv, 0.0) * dt)),
        over_intervals=int(over.sum()),
        crossings=int(rising.sum()),
        hours=float(dt.sum()),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Bound:
    """The least waste that static per-series levels chosen *with hindsight* could have had."""

    waste_hours: float
    over_intervals: int


def _least_waste_by_over(usage: series.Series) -> series.FloatArray:
    """Entry k: the least waste (resource-hours) of a static level over at most k intervals."""
    ok = np.isfinite(usage.values)
    t, v = usage.times[ok], usage.values[ok]
    steps = np.diff(t)
    dt = np.append(steps, float(np.median(steps)) if len(steps) else 0.0) / 3600.0
    order = np.argsort(v, kind="stable")
    v, w = v[order], dt[order]
    # Only the observed values need trying: between two of them a level wastes more for the
    # same intervals over. Level v[j] wastes sum(w_i (v[j] - v_i)) over the values below it.
    waste = v * np.cumsum(w) - np.cumsum(w * v)
    over = len(v) - np.searchsorted(v, v, side="right")
    least = np.full(len(v) + 1, np.inf)
    np.minimum.at(least, over, waste)
    return np.minimum.accumulate(least)


def hindsight_frontier(
    usages: Sequence[series.Series], *, max_over_intervals: int
) -> series.FloatArray:
    """Entry k: the least total waste of one static level per series, each level chosen knowing
    the series it is held against, with at most k intervals over in total (k = 0..max).

    A benchmark yardstick, not a strategy: no static levels, however they were chosen, waste
    less on these series with that many intervals over. Exact: a min-plus knapsack over the
    series, each contributing its least waste for each count of intervals over.
    """
    budget = max(int(max_over_intervals), 0)
    best = np.zeros(budget + 1)
    for usage in usages:
        if not np.isfinite(usage.values).any():
            continue
        least = _least_waste_by_over(usage)
        nxt = np.full(budget + 1, np.inf)
        for k in range(min(len(least), budget + 1)):
            np.minimum(nxt[k:], best[: budget + 1 - k] + least[k], out=nxt[k:])
        best = nxt
    return best


def hindsight_bound(usages: Sequence[series.Series], *, max_over_intervals: int) -> Bound:
    """`hindsight_frontier` at `max_over_intervals`, with the intervals over it actually uses."""
    best = hindsight_frontier(usages, max_over_intervals=max_over_intervals)
    waste = float(best[-1])
    return Bound(waste_hours=waste, over_intervals=int(np.argmax(best <= waste)))
