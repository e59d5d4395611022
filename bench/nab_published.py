"""Published NAB detectors' outputs on the files of a corpus, in NAB's `results/` layout.

`<results>/<detector>/<category>/<detector>_<file>.csv[.gz]` with columns
`timestamp,value,anomaly_score,...`: what the detector produced on `<category>/<file>`. Only the
anomaly_score column is used; it is scored by kopilot's own NAB scorer, with the threshold
optimised on exactly the files scored, so that a published detector and kopilot's are compared on
the same files by the same rules.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
from pathlib import Path

import numpy as np

from kopilot.health import nab_corpus
from kopilot.model import errors

DETECTORS = ("ARTime", "numenta", "contextOSE", "knncad", "randomCutForest")


def add_corpus_arguments(parser: argparse.ArgumentParser) -> None:
    """`--corpus`/`--labels` for any NAB-layout folder, beside datasets' `--data`/`--quick`."""
    parser.add_argument("--corpus", type=Path, help="a folder laid out like NAB's data/")
    parser.add_argument("--labels", type=Path, help="NAB windows file (combined_windows.json)")
    parser.add_argument(
        "--published",
        type=Path,
        default=None,
        help="published detectors' outputs in NAB's results/ layout "
        "(default: published/ or results/ beside the data folder)",
    )


def corpus_paths(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[Path, Path]:
    """(NAB-layout data folder, windows file). `--corpus D --labels F`, or `--data D --labels F`
    (D laid out like NAB's data/), or `--data DIR` holding nab-dev/, or `--quick` (the sample)."""
    import datasets  # bench/datasets.py: --data, --quick and where each data set comes from

    if args.labels is not None:
        folder = args.corpus or args.data
        if folder is None:
            parser.error("--labels goes with --corpus (or --data) naming NAB's data/ folder")
        return Path(folder), Path(args.labels)
    if args.corpus is not None:
        parser.error("--corpus and --labels go together")
    dev = datasets.root(args, "nab-dev") / "nab-dev"
    return dev / "data", dev / "labels" / "combined_windows.json"


def beside(data_dir: Path, *names: str) -> Path | None:
    """The first of `names` that exists next to the data folder (NAB's or the dev layout)."""
    return next((data_dir.parent / n for n in names if (data_dir.parent / n).exists()), None)


def _open(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path), encoding="utf-8", newline="")
    return path.open(newline="", encoding="utf-8")  # type: ignore[return-value]


def scores_for(results: Path, detector: str, key: str, rows: int) -> np.ndarray:
    """One detector's anomaly scores for `category/file.csv`, checked to have `rows` rows."""
    cat, _, name = key.rpartition("/")
    base = results / detector / cat / f"{detector}_{name}"
    path = next((p for p in (base.with_name(base.name + ".gz"), base) if p.exists()), None)
    if path is None:
        raise errors.InvalidInputError(f"{base}[.gz]: no published output of {detector} for {key}")
    with _open(path) as f:
        reader = csv.reader(f)
        header = next(reader, [])
        if "anomaly_score" not in header:
            raise errors.InvalidInputError(f"{path}:1: no anomaly_score column")
        col = header.index("anomaly_score")
        out = np.array([float(r[col]) for r in reader], dtype=np.float64)
    if len(out) != rows:
        raise errors.InvalidInputError(
            f"{path}: {len(out)} rows but the data file {key} has {rows}; not the same file"
        )
    return out


def load(results: Path, corpus: nab_corpus.Corpus) -> dict[str, list[np.ndarray]]:
    """Every published detector under `results` that covers all the corpus's files."""
    found: dict[str, list[np.ndarray]] = {}
    for detector in DETECTORS:
        if not (results / detector).is_dir():
            continue
        found[detector] = [
            scores_for(results, detector, s.name, len(v))
            for s, v in zip(corpus.series, corpus.values, strict=True)
        ]
    return found
