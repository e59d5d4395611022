"""NAB scoring: null scores 0, perfect scores 100, and hand-computed rows match NAB's formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kopilot.health import nab_scoring
from kopilot.model import errors
from tests.paths import TRACES

STANDARD = nab_scoring.PROFILES[0]
T0 = np.datetime64("2020-01-01T00:00:00", "s")


def make_series(n: int, windows: list[tuple[int, int]], name: str = "s.csv"):
    ts = T0 + np.arange(n) * np.timedelta64(300, "s")
    return nab_scoring.LabelledSeries(
        name=name, timestamps=ts, windows=tuple((ts[a], ts[b]) for a, b in windows)
    )


def firing_at(n: int, rows: list[int]) -> np.ndarray:
    s = np.zeros(n)
    s[rows] = 1.0
    return s


def sigmoid_scaled(x: float) -> float:
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def test_probationary_length_is_15_percent_capped_at_750() -> None:
    assert nab_scoring.probationary_length(1000) == 150
    assert nab_scoring.probationary_length(4032) == 604
    assert nab_scoring.probationary_length(15902) == 750


@pytest.mark.parametrize("profile", nab_scoring.PROFILES, ids=lambda p: p.name)
def test_null_detector_scores_zero_and_perfect_scores_hundred(profile) -> None:
    corpus = [make_series(2000, [(500, 599), (1200, 1399)]), make_series(1000, [(700, 749)])]
    null = [np.zeros(2000), np.zeros(1000)]
    perfect = [firing_at(2000, [500, 1200]), firing_at(1000, [700])]
    assert nab_scoring.score_corpus(corpus, null, profile).score == pytest.approx(0.0)
    assert nab_scoring.score_corpus(corpus, perfect, profile).score == pytest.approx(100.0)


def test_only_the_earliest_detection_in_a_window_counts() -> None:
    series = make_series(1000, [(400, 499)])
    centre = nab_scoring.score_corpus([series], [firing_at(1000, [450])], STANDARD)
    both = nab_scoring.score_corpus([series], [firing_at(1000, [450, 460, 470])], STANDARD)
    expected = sigmoid_scaled(-50 / 100) / sigmoid_scaled(-1.0)
    assert centre.raw == pytest.approx(expected)
    assert both.raw == pytest.approx(expected)
    assert centre.per_series[0].detected == 1


def test_false_positives_cost_fp_weight_before_any_window_and_less_just_after_one() -> None:
    series = make_series(2000, [(1000, 1099)])
    before = nab_scoring.score_corpus([series], [firing_at(2000, [1000, 800])], STANDARD)
    assert before.raw == pytest.approx(1.0 - STANDARD.fp_weight)
    after = nab_scoring.score_corpus([series], [firing_at(2000, [1000, 1109])], STANDARD)
    assert after.raw == pytest.approx(1.0 + STANDARD.fp_weight * sigmoid_scaled(10 / 99))
    far = nab_scoring.score_corpus([series], [firing_at(2000, [1000, 1900])], STANDARD)
    assert far.raw == pytest.approx(1.0 - STANDARD.fp_weight)


def test_probationary_rows_are_not_scored() -> None:
    series = make_series(1000, [(500, 549)])
    scores = firing_at(1000, [500, 10, 100])  # rows 10 and 100 are in the first 150
    result = nab_scoring.score_corpus([series], [scores], STANDARD)
    assert result.raw == pytest.approx(1.0)
    assert result.per_series[0].false_positives == 0


def test_threshold_is_optimised_over_the_corpus() -> None:
    # Scores 0.9 at the window's left edge and 0.5 at twenty rows outside: the best threshold is
    # 0.9; at 0.5 the twenty false positives would cost 20 * 0.11.
    series = make_series(1000, [(500, 549)])
    s = np.zeros(1000)
    s[500] = 0.9
    s[700:720] = 0.5
    result = nab_scoring.score_corpus([series], [s], STANDARD)
    assert result.threshold == pytest.approx(0.9)
    assert result.score == pytest.approx(100.0)
    sweep = nab_scoring.sweep_thresholds([series], [s], STANDARD)
    at_half = float(sweep.raw[np.flatnonzero(sweep.thresholds == 0.5)[0]])
    assert at_half == pytest.approx(1.0 - 20 * 0.11)


def test_sweep_matches_direct_scoring_at_every_threshold() -> None:
    rng = np.random.default_rng(7)
    corpus = [make_series(800, [(300, 349), (600, 640)]), make_series(600, [(200, 260)])]
    scores = [rng.random(800).round(2), rng.random(600).round(2)]
    sweep = nab_scoring.sweep_thresholds(corpus, scores, STANDARD)
    for threshold, raw in zip(sweep.thresholds[1:], sweep.raw[1:], strict=True):
        direct = sum(
            nab_scoring.score_series_at(c, s, threshold, STANDARD).raw
            for c, s in zip(corpus, scores, strict=True)
        )
        assert raw == pytest.approx(direct)


def test_window_without_rows_is_a_clear_error() -> None:
    series = make_series(100, [])
    bad = nab_scoring.LabelledSeries(
        name="x.csv",
        timestamps=series.timestamps,
        windows=((np.datetime64("2030-01-01T00:00:00"), np.datetime64("2030-01-02T00:00:00")),),
    )
    with pytest.raises(errors.InvalidInputError, match=r"x\.csv: window .* holds no row"):
        nab_scoring.score_corpus([bad], [np.zeros(100)], STANDARD)


NAB_DEV = TRACES / "nab-dev"  # the six realAdExchange series and their 14 windows


def test_real_nab_labels_null_and_perfect() -> None:
    import json

    labels = json.loads((NAB_DEV / "labels" / "combined_windows.json").read_text())
    corpus, null, perfect = [], [], []
    for key, windows in labels.items():
        stamps = [
            line.split(",")[0] for line in (NAB_DEV / "data" / key).read_text().splitlines()[1:]
        ]
        ts = np.array([s.replace(" ", "T") for s in stamps], dtype="datetime64[s]")
        wins = tuple(
            (np.datetime64(a.replace(" ", "T"), "s"), np.datetime64(b.replace(" ", "T"), "s"))
            for a, b in windows
        )
        corpus.append(nab_scoring.LabelledSeries(name=key, timestamps=ts, windows=wins))
        null.append(np.zeros(len(ts)))
        p = np.zeros(len(ts))
        p[np.searchsorted(ts, [w[0] for w in wins])] = 1.0
        perfect.append(p)
    profiles = nab_scoring.profiles_from_json(json.loads((NAB_DEV / "profiles.json").read_text()))
    for profile in profiles:
        assert nab_scoring.score_corpus(corpus, null, profile).score == pytest.approx(0.0)
        result = nab_scoring.score_corpus(corpus, perfect, profile)
        assert result.score == pytest.approx(100.0)
        assert result.null == -profile.fn_weight * 14
