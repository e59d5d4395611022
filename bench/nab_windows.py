"""Which windows each detector catches under leave-one-category-out, window by window.

    python bench/nab_windows.py --data DIR     # DIR holds nab-dev/
    python bench/nab_windows.py --data D --labels FILE [--published RESULTS]

For each series: per window, the row offset of each detector's first detection inside it (`--`:
missed), each detector at its LOCO threshold for that series' category (chosen on the other
categories, `kopilot.health.nab_loco`, standard profile); then each detector's false positives in
the series. kopilot is its default ensemble (one configuration). Use it on the development files
to see which kinds of anomaly kopilot misses that a published detector catches.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import datasets  # bench/datasets.py: --data, --quick and where each data set comes from
import nab_published
from kopilot.health import ensembles, nab_corpus, nab_loco, nab_scoring, streaming
from kopilot.model import errors


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    datasets.add_arguments(parser, "nab-dev")
    nab_published.add_corpus_arguments(parser)
    args = parser.parse_args()
    data_dir, labels = nab_published.corpus_paths(parser, args)
    published_dir = args.published or nab_published.beside(data_dir, "published", "results")
    try:
        corpus = nab_corpus.load(data_dir, labels)
        published = nab_published.load(published_dir, corpus) if published_dir else {}
    except errors.InvalidInputError as e:
        parser.exit(2, f"error: {e}\n")
    matrix = corpus.matrix()
    out = streaming.run(ensembles.default(matrix.shape[1]), matrix)
    detectors = {
        "kopilot": [out[: len(v), j] for j, v in enumerate(corpus.values)],
        **published,
    }
    profile = nab_scoring.PROFILES[0]
    thresholds = {
        name: {
            f.category: f.threshold for f in nab_loco.loco(corpus.series, {name: s}, profile).folds
        }
        for name, s in detectors.items()
    }
    print("window [first row, last row]: first detection's offset into it per detector")
    print("  " + "  ".join(f"{n[:7]:>7s}" for n in detectors))
    for j, series in enumerate(corpus.series):
        cat = nab_loco.category(series)
        left, right = nab_scoring.window_bounds(series)
        window, _ = nab_scoring.row_labels(series, profile)
        fired = {
            n: np.nan_to_num(s[j], nan=-np.inf) >= thresholds[n][cat] for n, s in detectors.items()
        }
        fps = "  ".join(
            f"{int((f & (window == nab_scoring.NO_WINDOW)).sum()):>7d}" for f in fired.values()
        )
        print(f"{series.name}\n  {fps}  false positives")
        for k, (lo, hi) in enumerate(zip(left, right, strict=True)):
            cells = []
            for f in fired.values():
                hits = np.flatnonzero(f & (window == k))
                cells.append(f"{hits[0] - lo:>7d}" if len(hits) else f"{'--':>7s}")
            print(f"  {'  '.join(cells)}  w{k} [{lo}, {hi}]")


if __name__ == "__main__":
    main()
