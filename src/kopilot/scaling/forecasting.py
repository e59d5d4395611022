"""Choosing a forecaster per service by rolling backtest, and turning it into quantile forecasts.

What the scaler needs is not the demand at one instant but the *peak* demand over the window a new
replica must cover: (now, now + cold start + margin]. So the backtest asks each forecaster, at
many origins in the last stretch of history, for its point path over that window, and compares
the path's maximum with the window's real maximum. The errors, scaled by the forecast level
plus the mean demand (noise grows with demand, but bursts from near zero must not explode), give a calibrated quantile (split-conformal: the model is
fitted before the backtest stretch and judged on it); the forecaster with the lowest pinball loss
at the wanted quantile wins and is refitted on the whole history.

`Fitted.quantiles` gives quantile paths over any horizon, `Fitted.peak` the quantile of the
window peak that the policy plans with.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from kopilot.model import series
from kopilot.scaling import forecasters, periods

DAY = periods.DAY
MIN_IDLE_ORIGINS = 20
LEVELS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.975, 0.99, 0.995, 0.999)


@dataclass(frozen=True, slots=True, kw_only=True)
class Fitted:
    """A chosen, calibrated forecaster for one service."""

    model: forecasters.Model
    period: periods.Period
    step: float
    horizon: int
    """The peak window (in steps) the calibration was made for."""
    quantile: float
    peak_error: float
    """The `quantile` of (real peak - forecast peak) / (forecast peak + scale) in the backtest."""
    errors: tuple[float, ...]
    """All scaled peak errors of the backtest, sorted (for other quantiles)."""
    scale: float
    """Added to the forecast before scaling errors: the mean demand. Errors are thus relative at
    high demand and absolute near zero, where a relative error would explode on a burst."""
    idle_peak: float | None = None
    """Calibrated separately where the forecast peak is idle (at most `idle_level`): the
    `quantile` of the real peak there, in req/s. None when the backtest had too few such origins.
    Without it, errors learnt at busy times would keep a forecast-idle service from zero."""
    idle_level: float = 0.0
    by_horizon: Mapping[int, tuple[float, float | None]] = field(default_factory=dict)
    """Calibrations for other peak windows (steps -> (peak error, idle peak)), e.g. the longer
    window a scale-down must be safe for: the peak of noise over more steps is higher."""
    scores: Mapping[str, float] = field(default_factory=dict)
    """Pinball loss of every candidate in the backtest (lower is better)."""
    fitted_at: float = 0.0

    @property
    def name(self) -> str:
        return self.model.name

    def peak(self, grid: forecasters.Grid, horizon: int) -> tuple[float, float]:
        """(point peak, calibrated `quantile` of the peak) over the next `horizon` steps."""
        return self.peaks(grid, (horizon,))[0]

    def peaks(self, grid: forecasters.Grid, horizons: Sequence[int]) -> list[tuple[float, float]]:
        """`peak` for several horizons from one forecast path."""
        path = self.model.forecast(grid, max(1, *horizons))
        out = []
        for h in horizons:
            point = float(path[: max(1, h)].max())
            error, idle_peak = self.by_horizon.get(h, (self.peak_error, self.idle_peak))
            if idle_peak is not None and point <= self.idle_level:
                out.append((point, idle_peak))
            else:
                out.append((point, max(0.0, point + error * (point + self.scale))))
        return out

    def quantiles(
        self, grid: forecasters.Grid, horizon: int, levels: Sequence[float]
    ) -> dict[float, series.FloatArray]:
        """Quantile paths for the next `horizon` steps, one per level in `levels`.

        Step-wise quantiles reuse the scaled peak errors: conservative for the upper levels
        (a window peak is harder to hit than one step), which is the side a scaler cares about.
        """
        path = self.model.forecast(grid, max(1, horizon))
        errs = np.array(self.errors) if self.errors else np.zeros(1)
        out: dict[float, series.FloatArray] = {}
        for level in levels:
            if not 0.0 < level < 1.0:
                raise ValueError(f"quantile level must be in (0, 1), got {level}")
            e = float(np.quantile(errs, level))
            out[level] = np.maximum(0.0, path + e * (path + self.scale))
        return out


def _pinball(actual: np.ndarray, predicted: np.ndarray, q: float) -> float:
    diff = actual - predicted
    return float(np.mean(np.maximum(q * diff, (q - 1.0) * diff)))


def _conformal_level(n: int, q: float) -> float:
    return min(1.0, math.ceil((n + 1) * q) / n)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Trial:
    name: str
    errors: np.ndarray
    loss: float
    error_q: float
    idle_peak: float | None
    predicted: np.ndarray
    actual: np.ndarray
    mean_actual: np.ndarray
    idle: np.ndarray
    busy: np.ndarray


def _calibrate(trial: _Trial, scale: float, level: float) -> tuple[float, float | None, np.ndarray]:
    """(scaled error quantile, idle peak quantile, planned peaks) at one quantile level."""
    errors = trial.errors
    error_q = float(np.quantile(errors, _conformal_level(errors.size, level)))
    predicted = trial.predicted
    planned = np.maximum(0.0, predicted + error_q * (np.maximum(predicted, 0.0) + scale))
    idle_peak = None
    n_idle = int(trial.idle.sum())
    if n_idle >= MIN_IDLE_ORIGINS:
        idle_peak = float(np.quantile(trial.actual[trial.idle], _conformal_level(n_idle, level)))
        planned[trial.idle] = idle_peak
    return error_q, idle_peak, planned


def _trial(
    forecaster: forecasters.Forecaster,
    grid: forecasters.Grid,
    *,
    split: int,
    period_steps: int,
    horizon: int,
    quantile: float,
    scale: float,
    idle_level: float,
    max_origins: int,
) -> _Trial | None:
    model = forecaster.fit(grid.head(split), period_steps)
    if model is None:
        return None
    n = len(grid)
    last = n - horizon - 1
    if last < split:
        return None
    origins = np.unique(
        np.linspace(split - 1, last, num=min(max_origins, last - split + 2)).astype(int)
    )
    y = grid.values
    predicted = np.empty(origins.size)
    actual = np.empty(origins.size)
    mean_actual = np.empty(origins.size)
    for i, o in enumerate(origins.tolist()):
        path = model.forecast(grid.head(o + 1), horizon)
        predicted[i] = path.max()
        window = y[o + 1 : o + 1 + horizon]
        actual[i] = window.max()
        mean_actual[i] = window.mean()
    idle = predicted <= idle_level
    if idle.sum() < MIN_IDLE_ORIGINS:
        idle = np.zeros(origins.size, dtype=bool)
    busy = ~idle
    errors = (actual[busy] - predicted[busy]) / (np.maximum(predicted[busy], 0.0) + scale)
    trial = _Trial(
        name=model.name,
        errors=np.sort(errors),
        loss=math.inf,
        error_q=0.0,
        idle_peak=None,
        predicted=predicted,
        actual=actual,
        mean_actual=mean_actual,
        idle=idle,
        busy=busy,
    )
    error_q, idle_peak, planned = _calibrate(trial, scale, quantile)
    return dataclasses.replace(
        trial, loss=_pinball(actual, planned, quantile), error_q=error_q, idle_peak=idle_peak
    )


def select(
    history: series.Series,
    *,
    step: float,
    horizon: int,
    quantile: float,
    now: float,
    candidates: Sequence[forecasters.Forecaster] = forecasters.ALL,
    max_history_s: float = 14 * DAY,
    max_origins: int = 240,
    min_steps: int = 24,
    headroom: float | None = None,
    levels: Sequence[float] = LEVELS,
    also: Sequence[int] = (),
) -> Fitted | None:
    """Pick and calibrate the best forecaster for this history, or None if there is too little.

    `horizon` is the peak window in steps. Forecasters are compared by pinball loss at
    `quantile`. With `headroom`, the plan's level is then the highest of `levels` whose planned
    peaks, on the backtest, average at most (1 + headroom) x the peaks that really came: the
    most protection the service can have for that much spare capacity (smooth demand gets a high
    quantile, spiky demand a lower one instead of a runaway bill). Without it, `quantile` is used.
    """
    grid = forecasters.regular(history, step, since=now - max_history_s)
    n = len(grid)
    if n < max(min_steps, 3 * horizon + 4):
        return None
    period = periods.detect(history.since(now - max_history_s))
    period_steps = round(period.seconds / step) if period is not periods.Period.NONE else 0
    span = min(n // 3, max(round(DAY / step), 30 * horizon))
    if period_steps and n - span < 2 * period_steps:
        span = min(n // 3, max(n - 2 * period_steps, 3 * horizon + 2))
    split = n - span
    scale = max(float(np.mean(grid.values)), 1e-6)
    idle_level = 0.01 * scale
    trials: list[tuple[_Trial, forecasters.Forecaster]] = []
    for candidate in candidates:
        trial = _trial(
            candidate,
            grid,
            split=split,
            period_steps=period_steps,
            horizon=horizon,
            quantile=quantile,
            scale=scale,
            idle_level=idle_level,
            max_origins=max_origins,
        )
        if trial is not None and math.isfinite(trial.loss):
            trials.append((trial, candidate))
    if not trials:
        return None
    best, chosen = min(trials, key=lambda tc: tc[0].loss)
    others: dict[int, _Trial] = {}
    for h in also:
        other = _trial(
            chosen,
            grid,
            split=split,
            period_steps=period_steps,
            horizon=h,
            quantile=quantile,
            scale=scale,
            idle_level=idle_level,
            max_origins=max_origins,
        )
        if other is not None:
            others[h] = other
    level = quantile
    if headroom is not None:
        # What the service will hold is the largest of the calibrated plans (the longer windows
        # keep replicas through dips): that is what must fit the budget.
        budget = (1.0 + headroom) * float(np.mean(best.actual))
        usable = [
            lv
            for lv in sorted(levels)
            if max(float(np.mean(_calibrate(t, scale, lv)[2])) for t in (best, *others.values()))
            <= budget
        ]
        level = usable[-1] if usable else min(levels)
    error_q, idle_peak, _ = _calibrate(best, scale, level)
    best = dataclasses.replace(best, error_q=error_q, idle_peak=idle_peak)
    by_horizon: dict[int, tuple[float, float | None]] = {}
    for h, other in others.items():
        e, i, _ = _calibrate(other, scale, level)
        by_horizon[h] = (e, i)
    model = chosen.fit(grid, period_steps)
    if model is None:
        return None
    return Fitted(
        model=model,
        period=period,
        step=step,
        horizon=horizon,
        quantile=level,
        peak_error=best.error_q,
        errors=tuple(float(e) for e in best.errors),
        scale=scale,
        idle_peak=best.idle_peak,
        idle_level=idle_level,
        by_horizon=by_horizon,
        scores={t.name: round(t.loss, 6) for t, _ in trials},
        fitted_at=now,
    )


def infer_step(history: series.Series) -> float | None:
    """The sampling step of a series: the median spacing of its last 40 samples."""
    t = history.times[-41:]
    if t.size < 3:
        return None
    d = np.diff(t)
    d = d[d > 0]
    return float(np.median(d)) if d.size else None
