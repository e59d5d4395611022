"""Leave-one-category-out (LOCO) model selection and scoring on a NAB-layout corpus.

NAB optimises a detector's threshold on the very files it scores, and a detector's other settings
are usually tuned there too: the score then measures fit, not generalisation. LOCO holds out one
category (the folder before the `/` of a series' name) at a time, chooses every setting on the
other categories, and scores the held-out one with those choices:

- the threshold, NAB's way: the one that maximises the raw score over the training categories;
- the configuration, among a small set of candidates (each a full run of the detector): the one
  whose *worst* training category is best (the normalised score of each training category that
  has windows, at that candidate's training threshold). A setting good everywhere beats one best
  on average; this rule was fixed before any LOCO result was seen. Ties go to the first candidate.

The LOCO score pools the held-out folds: `100 * (sum raw - sum null) / (sum perfect - sum null)`
over all categories, each scored at settings chosen without it, so it is on the same scale as a
NAB score of the whole corpus. A category without windows (artificialNoAnomaly) has no normalised
score of its own; it still costs its false positives in the pooled score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kopilot.health import nab_scoring
from kopilot.model import errors


@dataclass(frozen=True, slots=True, kw_only=True)
class Fold:
    """One held-out category: what was chosen without it and how it scored."""

    category: str
    config: str
    threshold: float
    raw: float
    null: float
    perfect: float
    windows: int
    detected: int
    false_positives: int
    train_worst: float

    @property
    def score(self) -> float | None:
        """Normalised held-out score, or None for a category without windows."""
        span = self.perfect - self.null
        return 100.0 * (self.raw - self.null) / span if span > 0 else None


@dataclass(frozen=True, slots=True, kw_only=True)
class LocoResult:
    folds: tuple[Fold, ...]

    @property
    def score(self) -> float:
        raw = sum(f.raw for f in self.folds)
        null = sum(f.null for f in self.folds)
        perfect = sum(f.perfect for f in self.folds)
        return 100.0 * (raw - null) / (perfect - null) if perfect > null else 0.0


def category(series: nab_scoring.LabelledSeries) -> str:
    """A series' NAB category: the folder part of its name (`realTweets/x.csv` -> `realTweets`)."""
    head, sep, _ = series.name.rpartition("/")
    return head if sep else "."


def _by_category(
    corpus: Sequence[nab_scoring.LabelledSeries],
) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(corpus):
        groups.setdefault(category(s), []).append(i)
    return groups


def _category_score(
    corpus: Sequence[nab_scoring.LabelledSeries],
    scores: Sequence[nab_scoring.FloatArray],
    rows: Sequence[int],
    threshold: float,
    profile: nab_scoring.Profile,
) -> tuple[float, int, int, int]:
    """(raw, windows, detected, false positives) of some series at one threshold."""
    parts = [nab_scoring.score_series_at(corpus[i], scores[i], threshold, profile) for i in rows]
    return (
        sum(p.raw for p in parts),
        sum(p.windows for p in parts),
        sum(p.detected for p in parts),
        sum(p.false_positives for p in parts),
    )


def _normalised(raw: float, windows: int, profile: nab_scoring.Profile) -> float | None:
    null, perfect = -profile.fn_weight * windows, profile.tp_weight * windows
    return 100.0 * (raw - null) / (perfect - null) if perfect > null else None


def loco(
    corpus: Sequence[nab_scoring.LabelledSeries],
    candidates: Mapping[str, Sequence[nab_scoring.FloatArray]],
    profile: nab_scoring.Profile,
) -> LocoResult:
    """Hold out each category in turn; choose threshold and candidate on the rest; score it."""
    if not candidates:
        raise errors.InvalidInputError("LOCO needs at least one candidate configuration")
    groups = _by_category(corpus)
    if len(groups) < 2:
        raise errors.InvalidInputError(
            f"LOCO needs at least two categories (folders); got {list(groups)}"
        )
    folds = []
    for held, held_rows in groups.items():
        train_rows = [i for c, rows in groups.items() if c != held for i in rows]
        train = [corpus[i] for i in train_rows]
        best: tuple[float, str, float] | None = None
        for name, scores in candidates.items():
            sweep = nab_scoring.sweep_thresholds(train, [scores[i] for i in train_rows], profile)
            threshold = float(sweep.thresholds[int(sweep.raw.argmax())])
            worst = min(
                (
                    s
                    for c, rows in groups.items()
                    if c != held
                    for raw, windows, _, _ in [
                        _category_score(corpus, scores, rows, threshold, profile)
                    ]
                    if (s := _normalised(raw, windows, profile)) is not None
                ),
                default=0.0,
            )
            if best is None or worst > best[0]:
                best = (worst, name, threshold)
        assert best is not None
        worst, name, threshold = best
        raw, windows, detected, fps = _category_score(
            corpus, candidates[name], held_rows, threshold, profile
        )
        folds.append(
            Fold(
                category=held,
                config=name,
                threshold=threshold,
                raw=raw,
                null=-profile.fn_weight * windows,
                perfect=profile.tp_weight * windows,
                windows=windows,
                detected=detected,
                false_positives=fps,
                train_worst=worst,
            )
        )
    return LocoResult(folds=tuple(folds))
