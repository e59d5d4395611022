"""The Numenta Anomaly Benchmark's scoring, as NAB v1.1 defines it (nab/sweeper.py, nab/scorer.py).

- The first `min(floor(0.15 * n), 750)` rows of each series are a probationary period: not scored.
- Each row gets a "sweep score". Inside a labelled window it is the scaled sigmoid of its relative
  position, `2 * sigmoid(-5 * pos) - 1` with `pos = -(right - i + 1) / width`, rescaled so that the
  window's left edge earns the profile's TP weight. Outside windows it is `-fp_weight` when no
  window precedes the row, else `fp_weight * scaled_sigmoid(|right_prev - i| / (width_prev - 1))`
  (a detection just after a window costs little, one far past it costs the full FP weight).
- At a threshold, every row whose anomaly score is `>= threshold` is a detection. A window counts
  only its best (= earliest) detection; a missed window costs `-fn_weight`; every detection outside
  a window adds its (negative) sweep score.
- One threshold per detector and profile is chosen to maximise the raw score over the corpus.
- The result is normalised `100 * (raw - null) / (perfect - null)`: `null` is a detector that never
  fires (`-fn_weight` per window), `perfect` one that hits every window at its left edge
  (`tp_weight` per window).

Everything is vectorised with numpy: sweeping all thresholds of a 230,000-row corpus takes a few
tens of milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from kopilot.model import errors

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

PROBATIONARY_PERCENT = 0.15
PROBATION_ROWS_CAP_BASE = 5000  # NAB caps the probationary period at 0.15 * 5000 = 750 rows.

NO_WINDOW = -1
PROBATION = -2


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """An application profile: NAB's cost matrix."""

    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float


PROFILES: tuple[Profile, ...] = (
    Profile(name="standard", tp_weight=1.0, fp_weight=0.11, fn_weight=1.0),
    Profile(name="reward_low_FP_rate", tp_weight=1.0, fp_weight=0.22, fn_weight=1.0),
    Profile(name="reward_low_FN_rate", tp_weight=1.0, fp_weight=0.11, fn_weight=2.0),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelledSeries:
    """One series' timestamps and its anomaly windows (inclusive [start, end] timestamps)."""

    name: str
    timestamps: npt.NDArray[np.datetime64]
    windows: tuple[tuple[np.datetime64, np.datetime64], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class SeriesScore:
    """One series' share of the corpus score at the chosen threshold."""

    name: str
    raw: float
    windows: int
    detected: int
    false_positives: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CorpusScore:
    """A detector's NAB result for one profile."""

    profile: str
    threshold: float
    raw: float
    null: float
    perfect: float
    score: float
    per_series: tuple[SeriesScore, ...]


def profiles_from_json(doc: Mapping[str, object]) -> tuple[Profile, ...]:
    """Read NAB's profiles.json (`{name: {"CostMatrix": {"tpWeight": ..., ...}}}`)."""
    result = []
    for name, body in doc.items():
        try:
            matrix = body["CostMatrix"]  # type: ignore[index]
            result.append(
                Profile(
                    name=name,
                    tp_weight=float(matrix["tpWeight"]),
                    fp_weight=float(matrix["fpWeight"]),
                    fn_weight=float(matrix["fnWeight"]),
                )
            )
        except (KeyError, TypeError, ValueError) as e:
            raise errors.InvalidInputError(
                f"profile {name!r}: expected {{'CostMatrix': {{'tpWeight', 'fpWeight', "
                f"'fnWeight'}}}} with numbers ({e!r})"
            ) from e
    return tuple(result)


def probationary_length(rows: int, percent: float = PROBATIONARY_PERCENT) -> int:
    """NAB's probationary period: `min(floor(percent * rows), percent * 5000)` rows."""
    return int(min(math.floor(percent * rows), percent * PROBATION_ROWS_CAP_BASE))


def scaled_sigmoid(position: FloatArray) -> FloatArray:
    """NAB's `scaledSigmoid`: `2 * sigmoid(-5 * pos) - 1`, and -1 beyond 3 window widths."""
    value = 2.0 / (1.0 + np.exp(5.0 * position)) - 1.0
    return np.where(position > 3.0, -1.0, value)


def window_bounds(series: LabelledSeries) -> tuple[IntArray, IntArray]:
    """Row indices (left, right), inclusive, of each window."""
    starts = np.array([w[0] for w in series.windows], dtype=series.timestamps.dtype)
    ends = np.array([w[1] for w in series.windows], dtype=series.timestamps.dtype)
    left = np.searchsorted(series.timestamps, starts, side="left").astype(np.int64)
    right = np.searchsorted(series.timestamps, ends, side="right").astype(np.int64) - 1
    if np.any(right < left):
        bad = int(np.argmax(right < left))
        raise errors.InvalidInputError(
            f"{series.name}: window {series.windows[bad]} holds no row of the series; "
            "check the labels file against the data"
        )
    if np.any(left[1:] <= right[:-1]):
        raise errors.InvalidInputError(
            f"{series.name}: windows overlap or are out of order; NAB windows are disjoint, sorted"
        )
    return left, right


def row_labels(series: LabelledSeries, profile: Profile) -> tuple[IntArray, FloatArray]:
    """Per row: its window index (or NO_WINDOW / PROBATION) and its NAB sweep score."""
    n = len(series.timestamps)
    rows = np.arange(n, dtype=np.int64)
    left, right = window_bounds(series)
    width = (right - left + 1).astype(np.float64)
    window = np.full(n, NO_WINDOW, dtype=np.int64)
    sweep = np.full(n, -profile.fp_weight, dtype=np.float64)
    if len(left):
        # Which window a row is in, or the last window that ended before it.
        k = np.searchsorted(left, rows, side="right") - 1
        known = k >= 0
        kk = np.where(known, k, 0)
        inside = known & (rows <= right[kk])
        window[inside] = kk[inside]
        tp_scale = profile.tp_weight / float(scaled_sigmoid(np.array([-1.0]))[0])
        pos_in = -(right[kk] - rows + 1) / width[kk]
        past = known & ~inside
        denom = np.maximum(width[kk] - 1.0, 1.0)
        pos_past = np.abs(right[kk] - rows) / denom
        sweep = np.where(inside, scaled_sigmoid(pos_in) * tp_scale, sweep)
        sweep = np.where(past, scaled_sigmoid(pos_past) * profile.fp_weight, sweep)
    window[: probationary_length(n)] = PROBATION
    return window, sweep


@dataclass(frozen=True, slots=True, kw_only=True)
class Sweep:
    """Raw corpus score at every candidate threshold (descending), `inf` meaning "never fire"."""

    thresholds: FloatArray
    raw: FloatArray
    windows: int


def sweep_thresholds(
    corpus: Sequence[LabelledSeries], scores: Sequence[FloatArray], profile: Profile
) -> Sweep:
    """Raw score of the corpus at each distinct anomaly score used as the threshold."""
    if len(corpus) != len(scores):
        raise errors.InvalidInputError(f"{len(corpus)} series but {len(scores)} score arrays")
    all_scores: list[FloatArray] = []
    all_window: list[IntArray] = []
    all_sweep: list[FloatArray] = []
    offset = 0
    for series, s in zip(corpus, scores, strict=True):
        if len(s) != len(series.timestamps):
            raise errors.InvalidInputError(
                f"{series.name}: {len(s)} anomaly scores for {len(series.timestamps)} rows"
            )
        window, sweep = row_labels(series, profile)
        keep = window != PROBATION
        w = window[keep]
        all_window.append(np.where(w >= 0, w + offset, NO_WINDOW))
        offset += len(series.windows)
        all_scores.append(np.nan_to_num(np.asarray(s, dtype=np.float64)[keep], nan=-np.inf))
        all_sweep.append(sweep[keep])
    a = np.concatenate(all_scores) if all_scores else np.zeros(0)
    w = np.concatenate(all_window) if all_window else np.zeros(0, dtype=np.int64)
    sw = np.concatenate(all_sweep) if all_sweep else np.zeros(0)
    windows_scored = np.unique(w[w >= 0])
    null = -profile.fn_weight * len(windows_scored)

    order = np.argsort(-a, kind="stable")
    a, w, sw = a[order], w[order], sw[order]
    # Each row's change to the raw score when the threshold drops to its anomaly score.
    delta = np.where(w < 0, sw, 0.0)
    in_win = np.flatnonzero(w >= 0)
    if len(in_win):
        # Running max of the sweep score per window, in descending-anomaly order.
        by_window = in_win[np.argsort(w[in_win], kind="stable")]
        group = w[by_window]
        lift = 10.0 * (profile.fn_weight + profile.tp_weight + 1.0)
        shifted = sw[by_window] + group * lift
        start = np.r_[True, group[1:] != group[:-1]]
        shifted_prev = np.where(start, -profile.fn_weight + group * lift, np.nan)
        running = np.maximum.accumulate(shifted)
        prev = np.where(start, shifted_prev, np.r_[np.nan, running[:-1]])
        prev = np.maximum(prev, -profile.fn_weight + group * lift)
        delta[by_window] = np.maximum(running - prev, 0.0)
    cum = null + np.cumsum(delta)
    last_of_value = np.r_[a[1:] != a[:-1], True] if len(a) else np.zeros(0, dtype=bool)
    finite = last_of_value & np.isfinite(a)
    thresholds = np.r_[np.inf, a[finite]]
    raw = np.r_[null, cum[finite]]
    return Sweep(thresholds=thresholds, raw=raw, windows=len(windows_scored))


def score_series_at(
    series: LabelledSeries, scores: FloatArray, threshold: float, profile: Profile
) -> SeriesScore:
    """One series' raw score with detections `scores >= threshold`."""
    window, sweep = row_labels(series, profile)
    fired = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf) >= threshold
    fired &= window != PROBATION
    fp = fired & (window == NO_WINDOW)
    raw = float(sweep[fp].sum())
    windows = sorted({int(x) for x in window if x >= 0})
    detected = 0
    for k in windows:
        hits = fired & (window == k)
        if hits.any():
            detected += 1
            raw += float(sweep[hits].max())
        else:
            raw -= profile.fn_weight
    return SeriesScore(
        name=series.name,
        raw=raw,
        windows=len(windows),
        detected=detected,
        false_positives=int(fp.sum()),
    )


def score_corpus(
    corpus: Sequence[LabelledSeries], scores: Sequence[FloatArray], profile: Profile
) -> CorpusScore:
    """NAB's score of one detector on a corpus for one profile, with its optimised threshold."""
    result = sweep_thresholds(corpus, scores, profile)
    best = int(np.argmax(result.raw))  # first maximum = highest threshold among ties, as NAB
    threshold = float(result.thresholds[best])
    per_series = tuple(
        score_series_at(series, s, threshold, profile)
        for series, s in zip(corpus, scores, strict=True)
    )
    null = -profile.fn_weight * result.windows
    perfect = profile.tp_weight * result.windows
    raw = float(result.raw[best])
    span = perfect - null
    score = 100.0 * (raw - null) / span if span > 0 else 0.0
    return CorpusScore(
        profile=profile.name,
        threshold=threshold,
        raw=raw,
        null=null,
        perfect=perfect,
        score=score,
        per_series=per_series,
    )
