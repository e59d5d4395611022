"""NAB benchmark: kopilot's streaming detector beside the published NAB detectors, on the same files.

    python bench/nab.py --data DIR             # DIR holds nab-dev/ (the NAB development subset)
    python bench/nab.py --quick                # the bundled sample (one category: no LOCO)
    python bench/nab.py --data D --labels FILE [--published RESULTS] [--profiles profiles.json]

With `--labels`, `--data` (or `--corpus`) is any directory laid out like NAB's `data/`
(category/file.csv, columns timestamp,value) and `--labels` a NAB windows file
(labels/combined_windows.json) whose keys are paths relative to it. `--published` is a folder in NAB's `results/` layout (default: `published/` or NAB's
own `results/` beside `--data`, if there; profiles likewise from `profiles.json` or
`config/profiles.json`): each published detector's anomaly_score column is scored by kopilot's scorer
(kopilot.health.nab_scoring, NAB's rules) on exactly the files kopilot is scored on.

Two tables:
1. NAB's protocol on these files: one threshold per detector and profile, optimised on the very
   files scored. Every setting of kopilot's detector was chosen on the development files: on them
   this figure is optimistic.
2. Leave-one-category-out (kopilot.health.nab_loco, standard profile): each category is scored
   with the threshold (and, for kopilot, the configuration among `--candidates`, picked by its
   worst training category) chosen on the other categories. The headline.

All series run through each detector at once (one stream per series, vectorised).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import datasets  # bench/datasets.py: --data, --quick and where each data set comes from
import nab_detectors
import nab_published
from kopilot.health import nab_corpus, nab_loco, nab_scoring, streaming
from kopilot.model import errors

# kopilot's configurations that LOCO chooses among (the knob besides the threshold).
CANDIDATES = (
    "kopilot ensemble",
    "ensemble without the seasonal member",
    "kopilot ensemble (max instead of mean)",
)


def run_detectors(
    corpus: nab_corpus.Corpus, detectors: dict[str, Callable[[int], streaming.Detector]]
) -> dict[str, list[np.ndarray]]:
    """Each detector's anomaly scores, one array per series."""
    matrix = corpus.matrix()
    results: dict[str, list[np.ndarray]] = {}
    for name, make in detectors.items():
        t0 = time.perf_counter()
        out = streaming.run(make(matrix.shape[1]), matrix)
        elapsed = time.perf_counter() - t0
        print(
            f"{name}: {elapsed:.1f} s for {matrix.shape[0]} steps x {matrix.shape[1]} streams",
            file=sys.stderr,
        )
        results[name] = [out[: len(v), j] for j, v in enumerate(corpus.values)]
    return results


def print_table(
    title: str,
    corpus: nab_corpus.Corpus,
    scores: dict[str, list[np.ndarray]],
    profiles: tuple[nab_scoring.Profile, ...],
) -> dict[str, list[nab_scoring.CorpusScore]]:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("detector")
    for p in profiles:
        table.add_column(p.name, justify="right")
    table.add_column(f"windows hit ({profiles[0].name})", justify="right")
    table.add_column(f"FPs ({profiles[0].name})", justify="right")
    results = {}
    for name, per_series in scores.items():
        results[name] = [nab_scoring.score_corpus(corpus.series, per_series, p) for p in profiles]
        first = results[name][0]
        hit = sum(s.detected for s in first.per_series)
        wins = sum(s.windows for s in first.per_series)
        fps = sum(s.false_positives for s in first.per_series)
        table.add_row(name, *(f"{r.score:.1f}" for r in results[name]), f"{hit}/{wins}", str(fps))
    Console(width=150).print(table)
    return results


def print_loco(
    corpus: nab_corpus.Corpus,
    kopilot: dict[str, list[np.ndarray]],
    published: dict[str, list[np.ndarray]],
    profile: nab_scoring.Profile,
) -> None:
    from rich.console import Console
    from rich.table import Table

    categories = {nab_loco.category(s) for s in corpus.series}
    if len(categories) < 2:
        print(f"no leave-one-category-out table: one category only ({', '.join(categories)})")
        return
    rows: list[tuple[str, nab_loco.LocoResult]] = []
    if kopilot:
        rows.append(
            (
                f"kopilot (config chosen among {len(kopilot)})",
                nab_loco.loco(corpus.series, kopilot, profile),
            )
        )
    for name, per_series in published.items():
        rows.append((name, nab_loco.loco(corpus.series, {name: per_series}, profile)))
    if not rows:
        return
    cats = [f.category for f in rows[0][1].folds]
    table = Table(
        title=f"Leave-one-category-out, {profile.name} profile: each category scored with the "
        "threshold (and configuration) chosen on the others"
    )
    table.add_column("detector")
    table.add_column("LOCO", justify="right")
    for c in cats:
        table.add_column(c, justify="right")
    for name, result in rows:
        cells = []
        for f in result.folds:
            score = f.score
            text = f"FP {f.false_positives}" if score is None else f"{score:.1f}"
            cells.append(f"{text} ({f.detected}/{f.windows})" if score is not None else text)
        table.add_row(name, f"{result.score:.1f}", *cells)
    Console(width=170).print(table)
    if kopilot:
        print(
            "kopilot's choices per held-out category (configuration, threshold, worst training "
            "category's score):"
        )
        for f in rows[0][1].folds:
            print(f"  {f.category:24s} {f.config:42s} {f.threshold:.4f}  {f.train_worst:.1f}")


def print_per_series(name: str, result: nab_scoring.CorpusScore) -> None:
    print(f"\nper series, {name}, {result.profile} profile (threshold {result.threshold:.4f}):")
    for s in result.per_series:
        print(
            f"  {s.name:58s} raw {s.raw:+7.3f}  hit {s.detected}/{s.windows}  FP {s.false_positives}"
        )


def _names(
    text: str, known: Sequence[str], what: str, parser: argparse.ArgumentParser
) -> list[str]:
    wanted = [w for w in text.split(",") if w]
    unknown = [w for w in wanted if w not in known]
    if unknown:
        parser.error(f"unknown {what} {unknown}; known: {list(known)}")
    return wanted


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    datasets.add_arguments(parser, "nab-dev")
    nab_published.add_corpus_arguments(parser)
    parser.add_argument("--profiles", type=Path, default=None, help="NAB profiles.json")
    parser.add_argument(
        "--candidates",
        default=",".join(CANDIDATES),
        help="kopilot configurations LOCO chooses among (comma-separated)",
    )
    parser.add_argument(
        "--detectors", default="", help="more detectors for table 1 only (comma-separated)"
    )
    parser.add_argument("--per-series", action="store_true", help="print per-series results")
    args = parser.parse_args()
    known = list(nab_detectors.DETECTORS)
    candidates = _names(args.candidates, known, "candidates", parser)
    extra = [d for d in _names(args.detectors, known, "detectors", parser) if d not in candidates]
    data_dir, labels = nab_published.corpus_paths(parser, args)
    # Beside the data folder: this repository's dev layout (profiles.json, published/) or NAB's
    # own (config/profiles.json, results/).
    profiles_file = args.profiles or nab_published.beside(
        data_dir, "profiles.json", "config/profiles.json"
    )
    published_dir = args.published or nab_published.beside(data_dir, "published", "results")
    try:
        if not data_dir.is_dir():
            raise errors.InvalidInputError(
                f"{data_dir}: no such data folder; pass --data <NAB's data/> --labels <windows>"
            )
        corpus = nab_corpus.load(data_dir, labels)
        profiles = nab_scoring.PROFILES
        if profiles_file is not None and profiles_file.exists():
            profiles = nab_scoring.profiles_from_json(json.loads(profiles_file.read_text()))
        published = {}
        if published_dir is not None and published_dir.is_dir():
            published = nab_published.load(published_dir, corpus)
            if args.published and not published:
                raise errors.InvalidInputError(
                    f"{published_dir}: none of {list(nab_published.DETECTORS)} in NAB's results/ "
                    "layout (<detector>/<category>/<detector>_<file>.csv[.gz])"
                )
        elif args.published:
            raise errors.InvalidInputError(f"{published_dir}: no such folder")
    except errors.InvalidInputError as e:
        parser.exit(2, f"error: {e}\n")
    for note in corpus.notes:
        print(f"note: {note}")
    chosen = {n: nab_detectors.DETECTORS[n] for n in [*candidates, *extra]}
    ours = run_detectors(corpus, chosen)
    n = len(corpus.series)
    results = print_table(
        f"NAB's protocol on the same {n} files (threshold optimised on them; kopilot's settings "
        "were chosen on the dev files, so its figures there are optimistic)",
        corpus,
        {**ours, **published},
        profiles,
    )
    standard = next((p for p in profiles if p.name == "standard"), profiles[0])
    print_loco(corpus, {k: ours[k] for k in candidates}, published, standard)
    if args.per_series:
        for name, scores in results.items():
            print_per_series(name, scores[0])


if __name__ == "__main__":
    main()
