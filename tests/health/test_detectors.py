"""Streaming detectors: they flag what they should, stay quiet otherwise, and streams don't mix."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kopilot.health import (
    calibration,
    contexts,
    ensembles,
    likelihood,
    ranges,
    seasons,
    streaming,
    suppression,
    zscores,
)


def noisy(steps: int, streams: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(steps)[:, None]
    return 50 + 10 * np.sin(2 * np.pi * t / 100) + rng.normal(0, 1, (steps, streams))


@pytest.mark.parametrize("z", [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, -1.5])
def test_log10_tail_matches_erfc(z: float) -> None:
    expected = math.log10(0.5 * math.erfc(z / math.sqrt(2)))
    # Abramowitz-Stegun 7.1.26: a few per cent relative error at most, deep in the tail.
    assert float(streaming.log10_tail(np.array([z]))[0]) == pytest.approx(expected, abs=1e-2)


def test_log10_tail_does_not_underflow_far_in_the_tail() -> None:
    value = float(streaming.log10_tail(np.array([40.0]))[0])
    assert np.isfinite(value)
    assert -352 < value < -345


def test_rolling_zscore_scores_a_spike_above_every_ordinary_point() -> None:
    x = noisy(800, 1)
    x[600, 0] += 30
    out = streaming.run(zscores.RollingZScore(1, window=200), x)[:, 0]
    assert int(np.argmax(out)) == 600
    assert out[:100].max() == 0.0  # warm-up


def test_missing_points_leave_the_state_unchanged_and_score_zero() -> None:
    x = noisy(400, 1)
    with_gap = x.copy()
    with_gap[300:310] = np.nan
    a = zscores.RollingZScore(1)
    b = zscores.RollingZScore(1)
    out_a = streaming.run(a, np.delete(x, range(300, 310), axis=0))
    out_b = streaming.run(b, with_gap)
    assert np.all(out_b[300:310] == 0.0)
    np.testing.assert_allclose(out_a[300:], out_b[310:])


@pytest.mark.parametrize(
    "make",
    [
        lambda n: zscores.RollingZScore(n, smoothing=3),
        zscores.StaticThreshold,
        contexts.ContextNovelty,
        ranges.RangeExceedance,
        lambda n: seasons.SeasonalResidual(n, block=4, blocks=64),
        ensembles.default,
    ],
    ids=["zscore", "static", "contexts", "ranges", "seasons", "ensemble"],
)
def test_streams_are_independent(make) -> None:
    x = noisy(700, 3, seed=5)
    x[500:520, 1] += 40
    x[100:200, 2] = np.nan
    together = streaming.run(make(3), x)
    alone = np.column_stack([streaming.run(make(1), x[:, [j]])[:, 0] for j in range(3)])
    np.testing.assert_allclose(together, alone, atol=1e-12)


def test_context_novelty_flags_a_missing_cycle_but_not_a_repeated_one() -> None:
    t = np.arange(3000)
    x = np.where((t % 100) < 40, 80.0, 20.0)  # a square wave, "daily" highs
    x = x.astype(float)
    x[2000:2100] = 20.0  # one high phase missing
    detector = contexts.ContextNovelty(1)
    out = np.array([detector.surprise(np.array([v]))[0] for v in x])
    assert out[2000:2150].max() > 3 * out[1000:2000].max()


def test_empirical_tail_reports_rarity_in_the_streams_own_history() -> None:
    cal = calibration.EmpiricalTail(2, learning=0, half_life=None)
    rng = np.random.default_rng(0)
    for _ in range(999):
        cal.update(np.array([rng.uniform(0, 1), rng.uniform(0, 10)]))
    out = cal.update(np.array([20.0, 20.0]))
    # Both are records over 999 past scores, p = 1/1000, whatever each stream's scale.
    np.testing.assert_allclose(out, 3.0 + 0.01 * 20.0, atol=1e-9)


def test_peak_filter_turns_a_burst_into_one_detection() -> None:
    f = suppression.PeakFilter(1, hold=50)
    burst = [0.1, 0.9, 0.8, 0.85, 0.7, 0.1]
    out = [float(f.update(np.array([s]))[0]) for s in burst]
    assert out == [0.1, 0.9, 0.0, 0.0, 0.0, 0.0]


def test_anomaly_likelihood_flags_a_raise_in_the_raw_score_habit() -> None:
    rng = np.random.default_rng(2)
    raw = np.abs(rng.normal(0, 1, (1500, 1)))
    raw[1200:1230] += 3.0
    out = streaming.run(likelihood.AnomalyLikelihood(1, learning=300), raw)[:, 0]
    assert out[1200:1240].max() > 0.5
    assert out[300:1200].max() < out[1200:1240].max() / 2


def test_ensemble_fires_on_a_level_shift_and_a_spike_not_on_the_cycle() -> None:
    x = noisy(3000, 2, seed=9)
    x[2000:, 0] += 25.0  # level shift
    x[2500, 1] += 60.0  # spike
    out = streaming.run(ensembles.default(2), x)
    quiet = out[500:2000].max()
    assert out[2000:2050, 0].max() > quiet
    assert out[2500, 1] > quiet
    assert np.all((out >= 0) & (out < 1))


def test_ensemble_needs_members_on_the_same_streams() -> None:
    with pytest.raises(ValueError, match="same streams"):
        ensembles.Ensemble([zscores.RollingZScore(2), zscores.RollingZScore(3)])


def test_peak_filter_quiet_period_blocks_a_slow_rise_but_not_a_much_stronger_event() -> None:
    f = suppression.PeakFilter(1, hold=1000, quiet=10, gamma=1.5)
    rising = [1.0, 1.2, 1.4, 1.45, 3.0]
    out = [float(f.update(np.array([s]))[0]) for s in rising]
    assert out == [1.0, 0.0, 0.0, 0.0, 3.0]


def test_range_exceedance_flags_only_values_beyond_the_range_seen() -> None:
    r = ranges.RangeExceedance(1, learning=10)
    x = np.r_[np.tile([0.0, 10.0], 25), 5.0, 12.0, -1.0]
    out = np.array([r.surprise(np.array([v]))[0] for v in x])
    assert np.all(out[:51] == 0.0)
    assert out[51] == pytest.approx(10 * 2.0 / 10.0)
    assert out[52] == pytest.approx(10 * 1.0 / 12.0)


def test_ensemble_treats_infinite_samples_as_missing() -> None:
    x = noisy(600, 1)
    broken = x.copy()
    broken[400, 0] = np.inf
    gap = x.copy()
    gap[400, 0] = np.nan
    out_broken = streaming.run(ensembles.default(1), broken)
    out_gap = streaming.run(ensembles.default(1), gap)
    np.testing.assert_array_equal(out_broken, out_gap)
    assert out_broken[400, 0] == 0.0


def test_scores_map_back_to_likelihoods() -> None:
    p = np.array([0.5, 1e-3, 1e-5, 1e-12])
    scores = streaming.surprise_score(np.log10(p))
    np.testing.assert_allclose(streaming.likelihood(scores), 1.0 - p, rtol=1e-9)
    assert scores[2] == pytest.approx(0.5)


def daily(steps: int, seed: int = 3) -> np.ndarray:
    """A square wave with 'daily' highs every 96 points, plus noise: a cycle of 12 blocks of 8."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    return np.where((t % 96) < 40, 80.0, 20.0) + rng.normal(0, 1, steps)


def test_seasonal_residual_learns_the_cycle_and_flags_a_missing_rise() -> None:
    x = daily(4000)
    x[3000:3040] = 20.0 + (x[3000:3040] - 80.0)  # one 'day' whose high phase does not come
    member = seasons.SeasonalResidual(1)
    out = np.array([member.surprise(np.array([v]))[0] for v in x[:2999]])
    assert member.cycles[0] % 96 == 0 and member.cycles[0] > 0
    during = np.array([member.surprise(np.array([v]))[0] for v in x[2999:3100]])
    assert np.nanmax(during) > 3 * np.nanmax(out[1500:])
    # The next day is normal again: comparing with two days back, the missing rise has no echo.
    after = np.array([member.surprise(np.array([v]))[0] for v in x[3100:3400]])
    assert np.nanmax(after) < np.nanmax(during) / 3


def test_seasonal_residual_abstains_on_a_stream_without_a_cycle() -> None:
    rng = np.random.default_rng(4)
    x = np.column_stack([rng.normal(50, 5, 3000), daily(3000)])
    member = seasons.SeasonalResidual(2)
    out = np.array([member.surprise(row) for row in x])
    # White noise: no lag forecasts a block much better than the last block does.
    assert np.isnan(out[1000:, 0]).mean() > 0.95
    assert np.isfinite(out[2000:, 1]).mean() > 0.95  # long multiples of the cycle need 2 of them


def test_ensemble_scores_as_if_an_abstaining_member_were_absent() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(50, 5, (3000, 1))
    x[2000:2030, 0] += 30.0
    member = seasons.SeasonalResidual(1)
    abstains = np.isnan([member.surprise(row)[0] for row in x])
    speaks = int(np.argmin(abstains)) if not abstains.all() else len(x)
    assert speaks > 500
    plain = ensembles.EnsembleSettings(seasons=())
    a = streaming.run(ensembles.default(1, plain), x)
    b = streaming.run(ensembles.default(1), x)
    # Identical until the seasonal member first speaks (then the peak filter's state differs).
    np.testing.assert_allclose(a[:speaks], b[:speaks], atol=1e-12)
