"""Load a directory laid out like NAB's `data/` (or any folder of `timestamp,value` CSVs) with a
NAB-style labels file (`{"category/file.csv": [[start, end], ...]}`) into a scoring corpus and a
(time, streams) matrix for the vectorised detectors."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kopilot.health import nab_scoring
from kopilot.model import errors


@dataclass(frozen=True, slots=True, kw_only=True)
class Corpus:
    series: tuple[nab_scoring.LabelledSeries, ...]
    values: tuple[np.ndarray, ...]

    def matrix(self) -> np.ndarray:
        """(time, streams) values, NaN-padded after each stream's end."""
        length = max(len(v) for v in self.values)
        m = np.full((length, len(self.values)), np.nan)
        for j, v in enumerate(self.values):
            m[: len(v), j] = v
        return m


def _timestamp(text: str, where: str) -> np.datetime64:
    try:
        return np.datetime64(text.strip().replace(" ", "T"), "s")
    except ValueError as e:
        raise errors.InvalidInputError(
            f"{where}: {text!r} is not a timestamp like '2015-03-13 03:52:53'"
        ) from e


def read_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """NAB's data format: a header `timestamp,value`, then one row per point."""
    stamps: list[np.datetime64] = []
    values: list[float] = []
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:2]] != ["timestamp", "value"]:
            raise errors.InvalidInputError(f"{path}:1: expected the header 'timestamp,value'")
        for line, row in enumerate(reader, start=2):
            if len(row) < 2:
                raise errors.InvalidInputError(f"{path}:{line}: expected 'timestamp,value'")
            stamps.append(_timestamp(row[0], f"{path}:{line}"))
            try:
                values.append(float(row[1]))
            except ValueError as e:
                raise errors.InvalidInputError(
                    f"{path}:{line}: value {row[1]!r} is not a number"
                ) from e
    ts = np.array(stamps, dtype="datetime64[s]")
    # NAB's own files repeat a timestamp now and then; only going back in time is an error.
    if len(ts) and np.any(ts[1:] < ts[:-1]):
        bad = int(np.argmax(ts[1:] < ts[:-1])) + 3
        raise errors.InvalidInputError(f"{path}:{bad}: timestamps must not go back in time")
    return ts, np.array(values, dtype=np.float64)


def load(data_dir: Path, labels_file: Path, *, only: set[str] | None = None) -> Corpus:
    """Every CSV under `data_dir` that the labels file names (keys are paths relative to it)."""
    try:
        labels = json.loads(labels_file.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise errors.InvalidInputError(f"{labels_file}: cannot read NAB labels ({e})") from e
    if not isinstance(labels, dict):
        raise errors.InvalidInputError(f"{labels_file}: expected {{'dir/file.csv': [[s, e], ...]}}")
    files = sorted(p.relative_to(data_dir).as_posix() for p in data_dir.rglob("*.csv"))
    keys = [k for k in files if k in labels and (only is None or k in only)]
    if not keys:
        raise errors.InvalidInputError(
            f"no CSV under {data_dir} is named in {labels_file}; keys look like "
            f"{next(iter(labels), '?')!r}, files like {files[:1]}"
        )
    series, values = [], []
    for key in keys:
        ts, v = read_csv(data_dir / key)
        windows = tuple(
            (_timestamp(w[0], f"{labels_file}: {key}"), _timestamp(w[1], f"{labels_file}: {key}"))
            for w in labels[key]
        )
        series.append(nab_scoring.LabelledSeries(name=key, timestamps=ts, windows=windows))
        values.append(v)
    return Corpus(series=tuple(series), values=tuple(values))


def merge(*corpora: Corpus) -> Corpus:
    return Corpus(
        series=tuple(s for c in corpora for s in c.series),
        values=tuple(v for c in corpora for v in c.values),
    )
