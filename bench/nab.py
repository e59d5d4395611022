"""NAB benchmark: kopilot's streaming detector beside its members, simple baselines and the
published NAB scoreboard, scored with NAB's exact scoring (kopilot.health.nab_scoring).

    python bench/nab.py --data DIR            # NAB dev subset + the held-out NAB series
    python bench/nab.py --quick               # the bundled sample (6 realAdExchange series)
    python bench/nab.py --corpus DIR --labels FILE [--profiles profiles.json]

`--data` is the folder holding the data sets nab-dev/ and nab/ (bench/datasets.py). `--corpus` is
any directory laid out like NAB's `data/` (category/file.csv, columns timestamp,value) and
`--labels` a NAB windows file (labels/combined_windows.json) whose keys are paths relative to
`--corpus`. All series run through each detector at once (one stream per series, vectorised); one
configuration for all files; NAB optimises one threshold per detector and profile over the corpus.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import datasets  # bench/datasets.py: --data, --quick and where each data set comes from
import nab_corpus
import nab_detectors
from kopilot.health import nab_scoring, streaming
from kopilot.model import errors

HELDOUT_LABELS = Path(__file__).resolve().parent / "nab_heldout_windows.json"

# The published NAB v1.1 scoreboard (full corpus, 58 files): standard / low FP / low FN.
SCOREBOARD: dict[str, tuple[float, float, float]] = {
    "ARTime": (74.9, 65.2, 80.4),
    "Numenta HTM": (70.1, 63.1, 74.3),
    "CAD OSE": (69.9, 67.0, 73.2),
    "KNN CAD": (58.0, 43.4, 64.8),
    "Random Cut Forest": (51.7, 38.4, 59.7),
    "Twitter ADVec": (47.1, 33.6, 53.5),
}


def score_detectors(
    corpus: nab_corpus.Corpus,
    detectors: dict[str, Callable[[int], streaming.Detector]],
    profiles: tuple[nab_scoring.Profile, ...],
) -> dict[str, list[nab_scoring.CorpusScore]]:
    from rich.progress import Progress

    matrix = corpus.matrix()
    results: dict[str, list[nab_scoring.CorpusScore]] = {}
    with Progress(transient=True) as progress:
        task = progress.add_task("detectors", total=len(detectors))
        for name, make in detectors.items():
            progress.update(task, description=f"running {name}")
            t0 = time.perf_counter()
            out = streaming.run(make(matrix.shape[1]), matrix)
            elapsed = time.perf_counter() - t0
            per_series = [out[: len(v), j] for j, v in enumerate(corpus.values)]
            results[name] = [
                nab_scoring.score_corpus(corpus.series, per_series, p) for p in profiles
            ]
            progress.console.log(
                f"{name}: {elapsed:.1f} s for {matrix.shape[0]} steps x {matrix.shape[1]} streams"
            )
            progress.advance(task)
    return results


def print_table(
    title: str,
    results: dict[str, list[nab_scoring.CorpusScore]],
    profiles: tuple[nab_scoring.Profile, ...],
    *,
    scoreboard: bool,
) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("detector")
    for p in profiles:
        table.add_column(p.name, justify="right")
    table.add_column("windows hit (std)", justify="right")
    table.add_column("FPs (std)", justify="right")
    for name, scores in results.items():
        std = scores[0]
        hit = sum(s.detected for s in std.per_series)
        wins = sum(s.windows for s in std.per_series)
        fps = sum(s.false_positives for s in std.per_series)
        table.add_row(name, *(f"{s.score:.1f}" for s in scores), f"{hit}/{wins}", str(fps))
    if scoreboard:
        table.add_section()
        for name, figures in SCOREBOARD.items():
            table.add_row(f"[dim]{name} (published, full NAB)[/dim]", *map(str, figures), "", "")
    Console(width=150).print(table)


def print_per_series(name: str, scores: list[nab_scoring.CorpusScore]) -> None:
    std = scores[0]
    print(f"\nper series, {name}, standard profile (threshold {std.threshold:.4f}):")
    for s in std.per_series:
        print(
            f"  {s.name:58s} raw {s.raw:+7.3f}  hit {s.detected}/{s.windows}  FP {s.false_positives}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, help="directory laid out like NAB's data/")
    parser.add_argument("--labels", type=Path, help="NAB windows file for --corpus")
    parser.add_argument(
        "--profiles", type=Path, help="NAB profiles.json (default: nab-dev's, else NAB's own)"
    )
    parser.add_argument(
        "--detectors", default="", help="comma-separated subset of detectors (default: all)"
    )
    parser.add_argument("--per-series", action="store_true", help="print per-series results")
    datasets.add_arguments(parser, "nab-dev", "nab")
    args = parser.parse_args()
    if args.corpus or args.labels:
        if not (args.corpus and args.labels):
            parser.error("--corpus and --labels go together")
        root = None
    else:
        root = (
            datasets.root(args, "nab-dev") if args.quick else datasets.root(args, "nab-dev", "nab")
        )
    if args.profiles is None and root is not None:
        args.profiles = root / "nab-dev" / "profiles.json"
    if args.profiles is not None and args.profiles.exists():
        profiles = nab_scoring.profiles_from_json(json.loads(args.profiles.read_text()))
    else:
        profiles = nab_scoring.PROFILES
    chosen = nab_detectors.DETECTORS
    if args.detectors:
        wanted = args.detectors.split(",")
        unknown = [w for w in wanted if w not in chosen]
        if unknown:
            parser.error(f"unknown detectors {unknown}; known: {list(chosen)}")
        chosen = {k: v for k, v in chosen.items() if k in wanted}

    if root is None:
        try:
            corpus = nab_corpus.load(args.corpus, args.labels)
        except errors.InvalidInputError as e:
            parser.exit(2, f"error: {e}\n")
        runs = [(f"NAB score on {args.corpus} ({len(corpus.series)} series)", corpus)]
    elif args.quick:
        dev = nab_corpus.load(
            root / "nab-dev" / "data", root / "nab-dev/labels/combined_windows.json"
        )
        runs = [(f"bundled NAB sample ({len(dev.series)} realAdExchange series)", dev)]
    else:
        dev = nab_corpus.load(
            root / "nab-dev" / "data", root / "nab-dev/labels/combined_windows.json"
        )
        held = nab_corpus.load(
            root / "nab", HELDOUT_LABELS, only={"nyc_taxi.csv", "elb_request_count_8c0756.csv"}
        )
        runs = [
            (f"NAB dev subset ({len(dev.series)} series)", dev),
            (
                "NAB dev subset + 2 held-out series (nyc_taxi, elb_request_count_8c0756)",
                nab_corpus.merge(dev, held),
            ),
        ]
    for title, corpus in runs:
        results = score_detectors(corpus, chosen, profiles)
        print_table(title, results, profiles, scoreboard=True)
        if args.per_series:
            for name, scores in results.items():
                print_per_series(name, scores)


if __name__ == "__main__":
    main()
