"""Rightsizing: what a container's requests should be, from its usage history.

Three strategies side by side, each a pure `recommend(history) -> Recommendation`:

- `KrrSimple`: robusta-dev/krr's "simple" strategy. CPU: the 95th percentile of each pod's usage,
  the largest over pods; memory: the largest pod's maximum + 15 %; needs 100 points.
- `VpaRecommender`: the Kubernetes VPA recommender's target: the 90th percentile of a decaying
  histogram (24 h half-life) of CPU usage weighted by the request, and of daily memory peaks,
  each + 15 % margin, floored at 25 millicores / 250 MiB (see `histograms`).
- `Kopilot`: for CPU and GPU, a level it backtests on its own history: among candidate
  quantiles and margins, the one that wasted least on the last third of the history while usage
  exceeded it in at most 1 % of the samples; as a daily *schedule* (one level per hour of day,
  applied by in-place resize) when the history shows a daily cycle, else static. Memory is
  never scheduled (shrinking a memory limit under a running process is how OOM-kills happen):
  the maximum + 15 %, floored at 250 MiB.

GPU memory (framebuffer used) is handled like memory: krr max + 15 %, VPA p90 of daily peaks
+ 15 %, kopilot max + 15 %; `fit_mig` names the smallest MIG profile that holds both.

GPU here means the busy share of the GPUs a container holds (DCGM utilisation x GPUs): a
recommended GPU share is what a time-sliced or MIG allocation would have to give it. The VPA
and krr rules are applied to it as to CPU (neither tool does GPUs; this is our extension).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from kopilot.cost import histograms
from kopilot.model import gpus, series

DAY_S = 86400.0
MIB = 1024.0**2


@dataclass(frozen=True, slots=True, kw_only=True)
class History:
    """Usage of one workload's container across its pods (one series per pod)."""

    subject: str
    """`namespace/workload/container`."""
    cpu: tuple[series.Series, ...] = ()
    memory: tuple[series.Series, ...] = ()
    gpu: tuple[series.Series, ...] = ()
    """GPU share busy (DCGM utilisation x GPUs held)."""
    gpu_memory: tuple[series.Series, ...] = ()
    """GPU framebuffer used, bytes (DCGM_FI_DEV_FB_USED)."""
    cpu_request: float | None = None
    memory_request: float | None = None
    gpus: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Level:
    """A recommended request: a static value, or a daily schedule (`value` is then its peak)."""

    value: float
    schedule: tuple[float, ...] = ()
    """Levels for equal slices of the UTC day, when the recommendation follows a daily cycle."""

    def at(self, times: series.FloatArray) -> series.FloatArray:
        """The level in force at each time."""
        if not self.schedule:
            return np.full(times.shape, self.value, dtype=np.float64)
        n = len(self.schedule)
        slot = ((np.mod(times, DAY_S) / DAY_S) * n).astype(np.int64) % n
        return np.asarray(self.schedule, dtype=np.float64)[slot]


@dataclass(frozen=True, slots=True, kw_only=True)
class Recommendation:
    """One strategy's verdict for one container; a resource is None when the data was too thin
    (the reason is in `notes`): never a made-up number."""

    strategy: str
    subject: str
    cpu: Level | None = None
    memory: Level | None = None
    gpu: Level | None = None
    gpu_memory: Level | None = None
    notes: tuple[str, ...] = ()


class Strategy(Protocol):
    @property
    def name(self) -> str: ...

    def recommend(self, history: History) -> Recommendation: ...


def _pooled(parts: Sequence[series.Series]) -> tuple[series.FloatArray, series.FloatArray]:
    """All finite samples of all pods, times and values."""
    if not parts:
        return np.empty(0), np.empty(0)
    t = np.concatenate([p.times for p in parts])
    v = np.concatenate([p.values for p in parts])
    keep = np.isfinite(v) & (v >= 0)
    return t[keep], v[keep]


def _enough(parts: Sequence[series.Series], what: str, min_points: int) -> str | None:
    _, v = _pooled(parts)
    if len(v) < min_points:
        return f"{what}: {len(v)} samples, need at least {min_points}"
    return None


# -- krr "simple" --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class KrrSimple:
    """robusta-dev/krr's `simple` strategy (its defaults: cpu_percentile 95,
    memory_buffer_percentage 15, points_required 100, cpu_min_value 10m, memory_min_value 100MB)."""

    name: str = "krr-simple"
    cpu_percentile: float = 95.0
    memory_buffer: float = 0.15
    points_required: int = 100
    cpu_min_cores: float = 0.010
    memory_min_bytes: float = 100e6

    def _percentile_over_pods(self, parts: Sequence[series.Series]) -> float:
        per_pod = [
            float(np.percentile(v, self.cpu_percentile))
            for p in parts
            if len(v := p.values[np.isfinite(p.values)])
        ]
        return max(per_pod)

    def _max_over_pods(self, parts: Sequence[series.Series]) -> float:
        return max(float(np.max(v)) for p in parts if len(v := p.values[np.isfinite(p.values)]))

    def recommend(self, history: History) -> Recommendation:
        notes: list[str] = []
        cpu = mem = gpu = None
        if (why := _enough(history.cpu, "cpu", self.points_required)) is None:
            cpu = Level(value=max(self._percentile_over_pods(history.cpu), self.cpu_min_cores))
        else:
            notes.append(why)
        if (why := _enough(history.memory, "memory", self.points_required)) is None:
            mem = Level(
                value=max(
                    self._max_over_pods(history.memory) * (1 + self.memory_buffer),
                    self.memory_min_bytes,
                )
            )
        else:
            notes.append(why)
        if history.gpus > 0:
            if (why := _enough(history.gpu, "gpu", self.points_required)) is None:
                gpu = Level(value=self._percentile_over_pods(history.gpu))
            else:
                notes.append(why)
        gmem = None
        if history.gpus > 0 and history.gpu_memory:
            if (why := _enough(history.gpu_memory, "gpu memory", self.points_required)) is None:
                top = self._max_over_pods(history.gpu_memory)
                gmem = Level(value=top * (1 + self.memory_buffer))
            else:
                notes.append(why)
        return Recommendation(
            strategy=self.name,
            subject=history.subject,
            cpu=cpu,
            memory=mem,
            gpu=gpu,
            gpu_memory=gmem,
            notes=tuple(notes),
        )


# -- VPA recommender -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class VpaRecommender:
    """The VPA recommender's target estimator (percentile 0.9, margin 0.15, minimums)."""

    name: str = "vpa"
    cpu_percentile: float = 0.9
    memory_percentile: float = 0.9
    margin: float = 0.15
    half_life_s: float = 24 * 3600.0
    min_cpu_cores: float = 0.025
    min_memory_bytes: float = 250 * MIB
    min_points: int = 1

    def recommend(self, history: History) -> Recommendation:
        notes: list[str] = []
        cpu = mem = gpu = None
        request = history.cpu_request if history.cpu_request is not None else 0.0
        if (why := _enough(history.cpu, "cpu", self.min_points)) is None:
            h = histograms.DecayingHistogram(histograms.CPU_BUCKETS, half_life_s=self.half_life_s)
            for t, v in zip(*_time_sorted(history.cpu), strict=True):
                h.add(v, max(request, 0.1), t)
            target = h.percentile(self.cpu_percentile) * (1 + self.margin)
            cpu = Level(value=max(target, self.min_cpu_cores))
        else:
            notes.append(why)
        if (why := _enough(history.memory, "memory", self.min_points)) is None:
            peaks = histograms.DecayingHistogram(
                histograms.MEMORY_BUCKETS, half_life_s=self.half_life_s
            )
            for p in history.memory:
                _merge_peaks(peaks, p, self.half_life_s)
            target = peaks.percentile(self.memory_percentile) * (1 + self.margin)
            mem = Level(value=max(target, self.min_memory_bytes))
        else:
            notes.append(why)
        if history.gpus > 0:
            if (why := _enough(history.gpu, "gpu", self.min_points)) is None:
                h = histograms.DecayingHistogram(
                    histograms.CPU_BUCKETS, half_life_s=self.half_life_s
                )
                for t, v in zip(*_time_sorted(history.gpu), strict=True):
                    h.add(v, max(history.gpus, 0.1), t)
                gpu = Level(value=h.percentile(self.cpu_percentile) * (1 + self.margin))
            else:
                notes.append(why)
        gmem = None
        if history.gpus > 0 and history.gpu_memory:
            if (why := _enough(history.gpu_memory, "gpu memory", self.min_points)) is None:
                peaks = histograms.DecayingHistogram(
                    histograms.MEMORY_BUCKETS, half_life_s=self.half_life_s
                )
                for p in history.gpu_memory:
                    _merge_peaks(peaks, p, self.half_life_s)
                gmem = Level(value=peaks.percentile(self.memory_percentile) * (1 + self.margin))
            else:
                notes.append(why)
        return Recommendation(
            strategy=self.name,
            subject=history.subject,
            cpu=cpu,
            memory=mem,
            gpu=gpu,
            gpu_memory=gmem,
            notes=tuple(notes),
        )


def _time_sorted(parts: Sequence[series.Series]) -> tuple[list[float], list[float]]:
    t, v = _pooled(parts)
    order = np.argsort(t, kind="stable")
    return t[order].tolist(), v[order].tolist()


def _merge_peaks(into: histograms.DecayingHistogram, s: series.Series, half_life_s: float) -> None:
    """Add one pod's daily peaks to a shared histogram (VPA aggregates peaks of all pods)."""
    one = histograms.memory_peaks_histogram(s, half_life_s=half_life_s)
    if one.is_empty():
        return
    if into.is_empty():
        into.reference = one.reference
    # Same buckets: weights add bucket by bucket once both refer to the same reference time.
    if one.reference != into.reference:
        one.weights *= 2.0 ** ((one.reference - into.reference) / half_life_s)
    into.weights += one.weights
    into.total = float(into.weights.sum())
    into.min_bucket = min(into.min_bucket, one.min_bucket)
    into.max_bucket = max(into.max_bucket, one.max_bucket)


# -- kopilot -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Kopilot:
    """kopilot's own: a backtested level, as a daily schedule where the history has a daily cycle.

    CPU and GPU: a schedule needs `min_days` of history and a day-over-day correlation of hourly
    means of at least `min_daily_correlation`; otherwise the level is static. A scheduled slot's
    level is a quantile of the samples in that slot and its `spread` neighbours on every past
    day, times 1 + margin; a static level is a quantile of all samples, times 1 + margin.
    The quantile and margin are not fixed: kopilot fits every candidate pair on the first
    two thirds of the history, replays it on the last third, and keeps the one that wastes
    least while usage exceeds it in at most `over_budget` of the samples (the most generous
    pair when none does). Too little history to backtest: `quantile` and `margin`.
    Memory: static, the maximum + `memory_margin`, at least `min_memory_bytes` (never a
    schedule: shrinking a memory limit under a running process is how OOM-kills happen).
    """

    name: str = "kopilot"
    slots: int = 24
    spread: int = 1
    min_days: float = 3.0
    min_daily_correlation: float = 0.5
    over_budget: float = 0.01
    quantiles: tuple[float, ...] = (0.95, 0.97, 0.99, 1.0)
    margins: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2)
    check_fraction: float = 1 / 3
    quantile: float = 0.99
    margin: float = 0.05
    memory_margin: float = 0.15
    min_cpu_cores: float = 0.010
    min_memory_bytes: float = 250 * MIB
    min_points: int = 100
    min_coverage: float = 0.5
    """Least share of its span that the history must cover (gaps beyond that: no number)."""

    def _gate(self, parts: Sequence[series.Series], what: str) -> str | None:
        """The data-quality gate: too few points, mostly gaps, or impossible values."""
        if (why := _enough(parts, what, self.min_points)) is not None:
            return why
        negative = sum(int(np.sum(p.values < 0)) for p in parts)
        if negative:
            return f"{what}: {negative} negative samples (impossible usage); no recommendation"
        t, _ = _pooled(parts)
        stamps = np.unique(t)
        if len(stamps) > 2:
            step = float(np.median(np.diff(stamps)))
            coverage = len(stamps) * step / max(float(stamps[-1] - stamps[0]) + step, 1e-9)
            if coverage < self.min_coverage:
                return (
                    f"{what}: the history covers {coverage:.0%} of its span (gaps); "
                    "keep the current request"
                )
        return None

    def _daily(self, t: series.FloatArray, v: series.FloatArray) -> bool:
        if len(t) == 0 or (t.max() - t.min()) < self.min_days * DAY_S:
            return False
        hour = np.floor((t - t.min()) / 3600.0).astype(np.int64)
        sums = np.bincount(hour, weights=v)
        counts = np.bincount(hour)
        with np.errstate(invalid="ignore", divide="ignore"):
            hourly = sums / counts
        a, b = hourly[:-24], hourly[24:]
        ok = np.isfinite(a) & np.isfinite(b)
        if ok.sum() < 48 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
            return False
        return bool(np.corrcoef(a[ok], b[ok])[0, 1] >= self.min_daily_correlation)

    def _level(
        self,
        t: series.FloatArray,
        v: series.FloatArray,
        *,
        daily: bool,
        quantile: float,
        margin: float,
        floor: float,
    ) -> Level:
        if not daily:
            return Level(value=max(float(np.quantile(v, quantile)) * (1 + margin), floor))
        slot = ((np.mod(t, DAY_S) / DAY_S) * self.slots).astype(np.int64) % self.slots
        levels: list[float] = []
        for s in range(self.slots):
            near = [(s + d) % self.slots for d in range(-self.spread, self.spread + 1)]
            sel = v[np.isin(slot, near)]
            top = float(np.quantile(sel, quantile)) if len(sel) else math.nan
            levels.append(max(top * (1 + margin), floor))
        fallback = float(np.nanmax(levels))
        filled = tuple(fallback if math.isnan(x) else x for x in levels)
        return Level(value=max(filled), schedule=filled)

    def _backtest(
        self, t: series.FloatArray, v: series.FloatArray, *, daily: bool, floor: float
    ) -> tuple[float, float, str]:
        """The (quantile, margin) to use, and a note saying how it was chosen."""
        cut = t[0] + (t[-1] - t[0]) * (1 - self.check_fraction)
        fit, check = t < cut, t >= cut
        if fit.sum() < self.min_points or check.sum() < self.min_points:
            return self.quantile, self.margin, "too little history to backtest: defaults"
        tf, vf, tc, vc = t[fit], v[fit], t[check], v[check]
        best: tuple[float, float, float, float] | None = None
        for q in self.quantiles:
            for m in self.margins:
                lv = self._level(tf, vf, daily=daily, quantile=q, margin=m, floor=floor).at(tc)
                over = float(np.mean(vc > lv))
                waste = float(np.sum(np.maximum(lv - vc, 0.0)))
                if over <= self.over_budget and (best is None or waste < best[0]):
                    best = (waste, q, m, over)
        if best is None:
            q, m = max(self.quantiles), max(self.margins)
            return q, m, f"no candidate within {self.over_budget:.1%} over: q{q:g} +{m:.0%}"
        _, q, m, over = best
        return q, m, f"backtested q{q:g} +{m:.0%} ({over:.1%} over on the last third)"

    def _compressible(self, parts: Sequence[series.Series], floor: float) -> tuple[Level, str]:
        t, v = _pooled(parts)
        order = np.argsort(t, kind="stable")
        t, v = t[order], v[order]
        daily = self._daily(t, v)
        q, m, how = self._backtest(t, v, daily=daily, floor=floor)
        level = self._level(t, v, daily=daily, quantile=q, margin=m, floor=floor)
        shape = "daily schedule" if daily else "static (no daily cycle found)"
        return level, f"{shape}; {how}"

    def recommend(self, history: History) -> Recommendation:
        notes: list[str] = []
        cpu = mem = gpu = None
        if (why := self._gate(history.cpu, "cpu")) is None:
            cpu, how = self._compressible(history.cpu, self.min_cpu_cores)
            notes.append(f"cpu: {how}")
        else:
            notes.append(why)
        if (why := self._gate(history.memory, "memory")) is None:
            _, v = _pooled(history.memory)
            top = float(np.max(v)) * (1 + self.memory_margin)
            mem = Level(value=max(top, self.min_memory_bytes))
        else:
            notes.append(why)
        if history.gpus > 0:
            if (why := self._gate(history.gpu, "gpu")) is None:
                gpu, how = self._compressible(history.gpu, 0.0)
                notes.append(f"gpu: {how}")
            else:
                notes.append(why)
        gmem = None
        if history.gpus > 0 and history.gpu_memory:
            if (why := self._gate(history.gpu_memory, "gpu memory")) is None:
                _, v = _pooled(history.gpu_memory)
                gmem = Level(value=float(np.max(v)) * (1 + self.memory_margin))
            else:
                notes.append(why)
        return Recommendation(
            strategy=self.name,
            subject=history.subject,
            cpu=cpu,
            memory=mem,
            gpu=gpu,
            gpu_memory=gmem,
            notes=tuple(notes),
        )


def fit_mig(model: str | None, *, gpu_share: float, gpu_memory_bytes: float) -> str | None:
    """The smallest MIG profile of `model` whose compute share (of 7) holds `gpu_share` and whose
    memory holds `gpu_memory_bytes`; None when the model is not MIG-capable or nothing fits."""
    gpu_model = gpus.model_named(model) if model else None
    if gpu_model is None or not gpu_model.mig_capable:
        return None
    fitting = [
        p
        for p in gpu_model.mig_profiles
        if p.compute / gpus.COMPUTE_SLICES >= gpu_share
        and p.memory_gb * 1e9 >= gpu_memory_bytes  # profile GB, conservatively 1e9 bytes
    ]
    if not fitting:
        return None
    return min(fitting, key=lambda p: (p.memory_slices, p.compute)).name


STRATEGIES: tuple[Strategy, ...] = (KrrSimple(), VpaRecommender(), Kopilot())
