"""Forecasters and the backtest that picks and calibrates one per service."""

from __future__ import annotations

import numpy as np
import pytest

from kopilot.model import series
from kopilot.scaling import forecasters, forecasting, periods

STEP = 300.0


def _daily(days: int, *, noise: float = 3.0, seed: int = 3) -> series.Series:
    rng = np.random.default_rng(seed)
    t = np.arange(0, days * periods.DAY, STEP)
    v = 100 + 60 * np.sin(2 * np.pi * t / periods.DAY) + rng.normal(0, noise, t.size)
    return series.Series.of(t, np.maximum(v, 0))


def test_regular_grid_fills_gaps_and_skips_nan() -> None:
    s = series.Series.of([0, 60, 180, 240], [1.0, np.nan, 4.0, 5.0])
    grid = forecasters.regular(s, 60.0)
    assert grid.values.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert grid.end == 240.0


@pytest.mark.parametrize("forecaster", forecasters.ALL, ids=lambda f: f.name)
def test_every_forecaster_gives_a_finite_path_of_the_horizon(
    forecaster: forecasters.Forecaster,
) -> None:
    grid = forecasters.regular(_daily(4), STEP)
    model = forecaster.fit(grid, round(periods.DAY / STEP))
    assert model is not None
    path = model.forecast(grid, 7)
    assert path.shape == (7,)
    assert np.isfinite(path).all()


def test_seasonal_forecasters_need_a_period() -> None:
    grid = forecasters.regular(_daily(4), STEP)
    assert forecasters.SeasonalNaive().fit(grid, 0) is None
    assert forecasters.Dsp().fit(grid, 0) is None


def test_dsp_recovers_a_clean_periodic_signal() -> None:
    t = np.arange(0, 3 * periods.DAY, STEP)
    v = 50 + 20 * np.sin(2 * np.pi * t / periods.DAY) + 5 * np.cos(6 * np.pi * t / periods.DAY)
    grid = forecasters.regular(series.Series.of(t, v), STEP)
    model = forecasters.Dsp().fit(grid, round(periods.DAY / STEP))
    assert model is not None
    ahead = np.arange(1, 13) * STEP + t[-1]
    truth = (
        50
        + 20 * np.sin(2 * np.pi * ahead / periods.DAY)
        + 5 * np.cos(6 * np.pi * ahead / periods.DAY)
    )
    assert np.allclose(model.forecast(grid, 12), truth, atol=1e-6)


def test_backtest_prefers_a_seasonal_model_on_daily_demand() -> None:
    history = _daily(10)
    fitted = forecasting.select(
        history, step=STEP, horizon=2, quantile=0.9, now=float(history.times[-1]) + STEP
    )
    assert fitted is not None
    assert fitted.period is periods.Period.DAY
    assert fitted.name in {"seasonal_naive", "seasonal_ets", "dsp"}
    assert fitted.scores[fitted.name] == min(fitted.scores.values())
    assert fitted.scores["persistence"] > fitted.scores[fitted.name]


def test_calibrated_peak_quantile_covers_about_that_share_of_future_peaks() -> None:
    full = _daily(16, noise=8.0, seed=11)
    cut = int(12 * periods.DAY / STEP)
    history = series.Series.of(full.times[:cut], full.values[:cut])
    horizon = 3
    fitted = forecasting.select(
        history, step=STEP, horizon=horizon, quantile=0.9, now=float(history.times[-1]) + STEP
    )
    assert fitted is not None
    covered = []
    for o in range(cut, full.times.size - horizon, 7):
        grid = forecasters.regular(series.Series.of(full.times[:o], full.values[:o]), STEP)
        _, peak = fitted.peak(grid, horizon)
        covered.append(full.values[o : o + horizon].max() <= peak)
    share = float(np.mean(covered))
    assert 0.75 <= share <= 0.99, share


def test_quantile_paths_are_ordered() -> None:
    history = _daily(5)
    fitted = forecasting.select(
        history, step=STEP, horizon=2, quantile=0.9, now=float(history.times[-1]) + STEP
    )
    assert fitted is not None
    grid = forecasters.regular(history, STEP)
    q = fitted.quantiles(grid, 12, [0.1, 0.5, 0.9])
    assert (q[0.1] <= q[0.5]).all() and (q[0.5] <= q[0.9]).all()
    with pytest.raises(ValueError, match="quantile level"):
        fitted.quantiles(grid, 12, [1.5])


def test_too_little_history_gives_no_fit() -> None:
    s = series.Series.of([0.0, 60.0, 120.0], [1.0, 2.0, 3.0])
    assert forecasting.select(s, step=60.0, horizon=2, quantile=0.9, now=180.0) is None


def test_fit_is_deterministic() -> None:
    history = _daily(6)
    now = float(history.times[-1]) + STEP
    a = forecasting.select(history, step=STEP, horizon=2, quantile=0.9, now=now)
    b = forecasting.select(history, step=STEP, horizon=2, quantile=0.9, now=now)
    assert a is not None and b is not None
    assert (a.name, a.peak_error, dict(a.scores)) == (b.name, b.peak_error, dict(b.scores))
