"""Demand forecasters, from persistence to Crane-style DSP, on a regular time grid.

A `Forecaster` is fitted on a `Grid` (a regular, gap-filled history) and gives a `Model`; a model
turns the latest history into a point path over the next `horizon` steps. Quantiles come from
calibrating those paths against what really happened (`kopilot.scaling.forecasting`), so every
forecaster here only has to be a good point forecaster.

| name | idea | needs a period |
|---|---|---|
| `persistence` | the last value stays | no |
| `ses` | exponentially smoothed level (alpha fitted by one-step error) | no |
| `trend` | a line through the recent window, damped | no |
| `seasonal_naive` | the value one period ago | yes |
| `seasonal_ets` | median seasonal profile + smoothed level of what the profile misses | yes |
| `dsp` | Crane's DSP idea: the period's strongest FFT harmonics, repeated | yes |

All are plain numpy: fitting one service on 14 days of 1-minute history takes milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from kopilot.model import series

FloatArray = series.FloatArray


@dataclass(frozen=True, slots=True, kw_only=True)
class Grid:
    """A regular history: `values[i]` is the rate at `start + i * step` (gaps filled)."""

    start: float
    step: float
    values: FloatArray

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def end(self) -> float:
        return self.start + self.step * (len(self) - 1)

    def head(self, n: int) -> Grid:
        """The first `n` samples (a view)."""
        return Grid(start=self.start, step=self.step, values=self.values[:n])

    def index_of(self, t: float) -> int:
        return round((t - self.start) / self.step)


def regular(history: series.Series, step: float, *, since: float | None = None) -> Grid:
    """Put a series on a regular grid of `step` seconds; missing or NaN samples are interpolated."""
    if since is not None:
        history = history.since(since)
    ok = np.isfinite(history.values)
    t, v = history.times[ok], history.values[ok]
    if t.size == 0:
        return Grid(start=0.0, step=step, values=np.zeros(0))
    idx = np.rint((t - t[0]) / step).astype(np.int64)
    n = int(idx[-1]) + 1
    out = np.full(n, np.nan)
    out[idx] = v
    missing = np.isnan(out)
    if missing.any():
        have = np.flatnonzero(~missing)
        out[missing] = np.interp(np.flatnonzero(missing), have, out[have])
    return Grid(start=float(t[0]), step=step, values=out)


class Model(Protocol):
    """A fitted forecaster."""

    @property
    def name(self) -> str: ...

    @property
    def lookback(self) -> int:
        """How many of the latest samples `forecast` reads."""
        ...

    def forecast(self, grid: Grid, horizon: int) -> FloatArray:
        """Point forecasts for the `horizon` steps after the grid's last sample."""
        ...


class Forecaster(Protocol):
    @property
    def name(self) -> str: ...

    def fit(self, grid: Grid, period_steps: int) -> Model | None:
        """A model, or None when this forecaster cannot use this history (e.g. no period)."""
        ...


# -- non-seasonal -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PersistenceModel:
    name: str = "persistence"
    lookback: int = 1

    def forecast(self, grid: Grid, horizon: int) -> FloatArray:
        return np.full(horizon, float(grid.values[-1]))


@dataclass(frozen=True, slots=True)
class Persistence:
    name: str = "persistence"

    def fit(self, grid: Grid, period_steps: int) -> Model | None:
        return PersistenceModel() if len(grid) else None


def _smoothed_level(values: FloatArray, alpha: float, lookback: int) -> float:
    """The exponentially smoothed level at the last sample (weights over the last `lookback`)."""
    tail = values[-lookback:]
    weights = (1.0 - alpha) ** np.arange(tail.size - 1, -1, -1, dtype=np.float64)
    return float(np.dot(weights, tail) / weights.sum())


def _fit_alpha(
    values: FloatArray, alphas: tuple[float, ...] = (0.05, 0.15, 0.3, 0.6, 1.0)
) -> float:
    """The smoothing constant with the least one-step squared error on the last 2,000 samples."""
    tail = values[-2000:]
    best, best_err = alphas[-1], math.inf
    for alpha in alphas:
        level = float(tail[0])
        err = 0.0
        for x in tail[1:].tolist():
            err += (x - level) ** 2
            level += alpha * (x - level)
        if err < best_err:
            best, best_err = alpha, err
    return best


def _lookback_for(alpha: float) -> int:
    return max(1, min(2000, math.ceil(6.0 / alpha)))


@dataclass(frozen=True, slots=True, kw_only=True)
class SesModel:
    name: str = "ses"
    alpha: float
    lookback: int

    def forecast(self, grid: Grid, horizon: int) -> FloatArray:
        return np.full(horizon, _smoothed_level(grid.values, self.alpha, self.lookback))


@dataclass(frozen=True, slots=True)
class Ses:
    name: str = "ses"

    def fit(self, grid: Grid, period_steps: int) -> Model | None:
        if len(grid) < 3:
            return None
        alpha = _fit_alpha(grid.values)
        return SesModel(alpha=alpha, lookback=_lookback_for(alpha))


@dataclass(frozen=True, slots=True, kw_only=True)
class TrendModel:
    name: str = "trend"
    lookback: int
    damping: float

    def forecast(self, grid: Grid, horizon: int) -> FloatArray:
        y = grid.values[-self.lookback :]
        slope, level = 0.0, float(y[-1])
        if y.size >= 2:
            x = np.arange(y.size, dtype=np.float64) - (y.size - 1) / 2.0
            slope = float(np.dot(x, y) / np.dot(x, x))
            level = float(y.mean()) + slope * (y.size - 1) / 2.0
        steps = np.arange(1, horizon + 1, dtype=np.float64)
        # Damped: the trend's effect adds up as damping + damping^2 + ... (Gardner's damped trend).
        damped = self.damping * (1 - self.damping**steps) / (1 - self.damping)
        return np.asarray(np.maximum(0.0, level + slope * damped), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Trend:
    """A local linear trend over the last `window` samples, damped so it does not run away."""

    name: str = "trend"
    window: int = 20
    damping: float = 0.9

    def fit(self, grid: Grid, period_steps: int) -> Model | None:
        if len(grid) < max(4, self.window // 2):
            return None
        return TrendModel(lookback=min(self.window, len(grid)), damping=self.damping)


# -- seasonal ---------------------------------------------------------------------------------


def _phases(grid: Grid, anchor: float, period: int, first: int, count: int) -> np.ndarray:
    """Phases (0..period-1) of grid indexes first..first+count-1 relative to `anchor`."""
    offset = round((grid.start - anchor) / grid.step)
    return np.asarray((offset + first + np.arange(count)) % period, dtype=np.int64)


@dataclass(frozen=True, slots=True, kw_only=True)
class SeasonalNaiveModel:
    name: str = "seasonal_naive"
    period: int

    @property
    def lookback(self) -> int:
        return self.period

    def forecast(self, grid: Grid, horizon: int) -> FloatArray:
        n = len(grid)
        last_period = grid.values[max(0, n - self.period) :]
        reps = math.ceil(horizon / last_period.size)
        return np.tile(last_period, reps)[:horizon].astype(np.float64)


@dataclass(frozen=True, slots=True)
class SeasonalNaive:
    name: str = "seasonal_naive"

    def fit(self, grid: Grid, period_steps: int) -> Model | None:
        if period_steps < 2 or len(grid) < period_steps:
            return None
        return SeasonalNaiveModel(period=period_steps)


def _folded(grid: Grid, period: int, max_periods: int) -> tuple[np.ndarray, float]:
    """The last whole periods as rows (periods x phase), and the time of the first row's phase 0."""
    k = min(max_periods, len(grid) // period)
    tail = grid.values[len(grid) - k * period :]
    anchor = grid.start + grid.step * (len(grid) - k * period)
    return tail.reshape(k, period), anchor


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileModel:
    """A seasonal profile by phase, plus (optionally) a smoothed level of what it misses."""

    name: str
    profile: FloatArray
    anchor: float
    alpha: float | None
    lookback: int

    def forecast(self, grid: Grid, horizon: int) -> FloatArray:
        period = self.profile.size
        n = len(grid)
        ahead = self.profile[_phases(grid, self.anchor, period, n, horizon)]
        if self.alpha is None:
            return np.asarray(np.maximum(0.0, ahead), dtype=np.float64)
        m = min(n, self.lookback)
        seen = self.profile[_phases(grid, self.anchor, period, n - m, m)]
        level = _smoothed_level(grid.values[n - m :] - seen, self.alpha, m)
        return np.asarray(np.maximum(0.0, ahead + level), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class SeasonalEts:
    """Median profile over the last periods, plus an exponentially smoothed level correction."""

    name: str = "seasonal_ets"
    max_periods: int = 7

    def fit(self, grid: Grid, period_steps: int) -> Model | None:
        if period_steps < 2 or len(grid) < 2 * period_steps:
            return None
        rows, anchor = _folded(grid, period_steps, self.max_periods)
        profile = np.median(rows, axis=0)
        residual = (rows - profile).ravel()
        alpha = _fit_alpha(residual)
        return ProfileModel(
            name=self.name,
            profile=profile,
            anchor=anchor,
            alpha=alpha,
            lookback=_lookback_for(alpha),
        )


@dataclass(frozen=True, slots=True)
class Dsp:
    """Crane's DSP predictor: keep the period's strongest harmonics (FFT), repeat the period.

    The last whole periods are transformed together; only frequencies that are harmonics of the
    period (every `k`-th bin for `k` periods) are candidates, and the strongest ones that carry
    `energy` of the harmonic power (at most `max_harmonics`) rebuild one period.
    """

    name: str = "dsp"
    max_periods: int = 7
    energy: float = 0.95
    max_harmonics: int = 64

    def fit(self, grid: Grid, period_steps: int) -> Model | None:
        if period_steps < 4 or len(grid) < 2 * period_steps:
            return None
        rows, anchor = _folded(grid, period_steps, self.max_periods)
        k = rows.shape[0]
        spectrum = np.fft.rfft(rows.ravel())
        harmonic = spectrum[::k].copy()  # bin j*k is the j-th harmonic of the period
        power = np.abs(harmonic[1:]) ** 2
        keep = np.zeros(harmonic.size, dtype=bool)
        keep[0] = True
        if power.sum() > 0:
            order = np.argsort(power)[::-1]
            cumulative = np.cumsum(power[order]) / power.sum()
            count = min(self.max_harmonics, int(np.searchsorted(cumulative, self.energy)) + 1)
            keep[1 + order[:count]] = True
        harmonic[~keep] = 0
        profile = np.fft.irfft(harmonic / k, n=period_steps)
        return ProfileModel(
            name=self.name, profile=np.asarray(profile), anchor=anchor, alpha=None, lookback=1
        )


ALL: tuple[Forecaster, ...] = (
    Persistence(),
    Ses(),
    Trend(),
    SeasonalNaive(),
    SeasonalEts(),
    Dsp(),
)
