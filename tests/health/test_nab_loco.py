"""Leave-one-category-out: nothing about a held-out category is used to score it."""

from __future__ import annotations

import numpy as np
import pytest

from kopilot.health import nab_loco, nab_scoring
from kopilot.model import errors

STANDARD = nab_scoring.PROFILES[0]
T0 = np.datetime64("2020-01-01T00:00:00", "s")
ROWS = 1000


def series(name: str, window: tuple[int, int] | None = (400, 500)) -> nab_scoring.LabelledSeries:
    ts = T0 + np.arange(ROWS) * np.timedelta64(60, "s")
    windows = () if window is None else ((ts[window[0]], ts[window[1]]),)
    return nab_scoring.LabelledSeries(name=name, timestamps=ts, windows=windows)


def firing(at: dict[int, float]) -> np.ndarray:
    s = np.zeros(ROWS)
    for i, v in at.items():
        s[i] = v
    return s


def test_the_held_out_threshold_is_chosen_on_the_other_categories_only() -> None:
    # Category a: its window fires at 0.9, and 0.5 fires five times outside it.
    # Category b: its window fires only at 0.5. On both together 0.5 is best; on a alone, 0.9.
    corpus = [series("a/1.csv"), series("b/1.csv")]
    a = firing({420: 0.9, 200: 0.5, 250: 0.5, 600: 0.5, 700: 0.5, 800: 0.5})
    b = firing({420: 0.5})
    whole = nab_scoring.score_corpus(corpus, [a, b], STANDARD)
    assert whole.threshold == pytest.approx(0.5)

    result = nab_loco.loco(corpus, {"only": [a, b]}, STANDARD)

    folds = {f.category: f for f in result.folds}
    assert folds["b"].threshold == pytest.approx(0.9)  # chosen on a
    assert folds["b"].detected == 0 and folds["b"].score == pytest.approx(0.0)
    assert folds["a"].threshold == pytest.approx(0.5)  # chosen on b
    assert folds["a"].false_positives == 5
    assert result.score < whole.score


def test_the_configuration_is_the_one_whose_worst_training_category_is_best() -> None:
    # Held out: c. On a and b, "spiky" is perfect on a but misses b (100 and 0); "steady" hits
    # both at the last moment and pays two false positives in each (~41 and ~41).
    corpus = [series("a/1.csv"), series("b/1.csv"), series("c/1.csv")]
    spiky = [firing({400: 1.0}), firing({}), firing({400: 1.0})]
    late = firing({499: 1.0, 200: 1.0, 250: 1.0})
    steady = [late, late, firing({})]
    mean_of_spiky = (100.0 + 0.0) / 2
    a_b = nab_scoring.score_corpus(corpus[:2], steady[:2], STANDARD)
    assert a_b.score < mean_of_spiky  # the mean would pick "spiky"; the worst case picks "steady"

    result = nab_loco.loco(corpus, {"spiky": spiky, "steady": steady}, STANDARD)

    fold_c = next(f for f in result.folds if f.category == "c")
    assert fold_c.config == "steady"
    assert fold_c.detected == 0  # and it misses c, which "spiky" would have caught


def test_a_perfect_detector_scores_100_and_a_category_without_windows_has_no_score() -> None:
    corpus = [series("a/1.csv"), series("b/1.csv"), series("quiet/1.csv", window=None)]
    perfect = [firing({400: 1.0}), firing({400: 1.0}), firing({})]

    result = nab_loco.loco(corpus, {"perfect": perfect}, STANDARD)

    assert result.score == pytest.approx(100.0)
    quiet = next(f for f in result.folds if f.category == "quiet")
    assert quiet.score is None and quiet.false_positives == 0


def test_one_category_is_one_clear_error() -> None:
    corpus = [series("a/1.csv"), series("a/2.csv")]
    with pytest.raises(errors.InvalidInputError, match="at least two categories"):
        nab_loco.loco(corpus, {"x": [firing({}), firing({})]}, STANDARD)
