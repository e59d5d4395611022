"""Where kopilot's detector loses NAB points: per window and per false positive (standard profile).

    python bench/nab_breakdown.py --data DIR            # the NAB dev subset (DIR/nab-dev)
    python bench/nab_breakdown.py --quick               # the bundled sample
    python bench/nab_breakdown.py --corpus DIR --labels FILE

A perfect detector earns the TP weight per window; the ensemble's raw score falls short by
`2 x missed windows` (a miss costs the FN weight instead of earning the TP weight), by lateness
(a hit earns the scaled sigmoid of its position: ~0.86 at a window's middle, where NAB's labelled
anomaly sits) and by the cost of each false positive. Each line shows the members' calibrated
surprises (max over the window, or at the false positive; `-` = the member abstained), so that a
miss can be traced to the member that should have caught it. Use it on the dev subset only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import datasets  # bench/datasets.py: --data, --quick and where each data set comes from
import nab_detectors
from kopilot.health import ensembles, nab_corpus, nab_scoring, streaming


def member_surprises(matrix: np.ndarray) -> np.ndarray:
    """(members, time, streams) calibrated surprises of the default ensemble's members."""
    ensemble = ensembles.default(matrix.shape[1])
    out = np.zeros((len(nab_detectors.member_names()), *matrix.shape))
    for t, row in enumerate(matrix):
        out[:, t] = ensemble.calibrated(np.where(np.isfinite(row), row, np.nan))
    return out


def fmt(values: np.ndarray) -> str:
    return "/".join("-" if np.isnan(v) else f"{v:.1f}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, help="directory laid out like NAB's data/")
    parser.add_argument("--labels", type=Path, help="NAB windows file for --corpus")
    datasets.add_arguments(parser, "nab-dev")
    args = parser.parse_args()
    if bool(args.corpus) != bool(args.labels):
        parser.error("--corpus and --labels go together")
    if args.corpus is None:
        dev = datasets.root(args, "nab-dev") / "nab-dev"
        args.corpus, args.labels = dev / "data", dev / "labels" / "combined_windows.json"
    corpus = nab_corpus.load(args.corpus, args.labels)
    matrix = corpus.matrix()
    scores = streaming.run(ensembles.default(matrix.shape[1]), matrix)
    members = member_surprises(matrix)
    profile = nab_scoring.PROFILES[0]
    per_series = [scores[: len(v), j] for j, v in enumerate(corpus.values)]
    result = nab_scoring.score_corpus(corpus.series, per_series, profile)
    print(f"score {result.score:.1f}, threshold {result.threshold:.4f}; members (calibrated):")
    print("  " + ", ".join(nab_detectors.member_names()))
    missed, late, fp_cost = 0, 0.0, 0.0
    for j, series in enumerate(corpus.series):
        window, sweep = nab_scoring.row_labels(series, profile)
        s = per_series[j]
        fired = (s >= result.threshold) & (window != nab_scoring.PROBATION)
        left, right = nab_scoring.window_bounds(series)
        for k, (lo, hi) in enumerate(zip(left, right, strict=True)):
            seen = members[:, lo : hi + 1, j]
            peak = np.where(np.isnan(seen).all(axis=1), np.nan, np.nanmax(seen, axis=1, initial=0))
            hits = np.flatnonzero(fired & (window == k))
            if len(hits):
                earned = float(sweep[hits].max())
                late += profile.tp_weight - earned
                print(
                    f"HIT  {series.name:52s} w{k} first at +{hits[0] - lo}/{hi - lo + 1} "
                    f"earns {earned:.3f}  members {fmt(peak)}"
                )
            else:
                missed += 1
                print(
                    f"MISS {series.name:52s} w{k} max score {s[lo : hi + 1].max():.3f}  "
                    f"members {fmt(peak)}"
                )
        for i in np.flatnonzero(fired & (window == nab_scoring.NO_WINDOW)):
            fp_cost -= float(sweep[i])
            print(
                f"  FP {series.name:52s} at {i} costs {-sweep[i]:.3f}  members "
                f"{fmt(members[:, i, j])}"
            )
    span = result.perfect - result.null
    print(
        f"points lost (of {span:.0f} between null and perfect): missed windows "
        f"{missed * (profile.tp_weight + profile.fn_weight):.2f}, lateness {late:.2f}, "
        f"false positives {fp_cost:.2f}"
    )


if __name__ == "__main__":
    main()
