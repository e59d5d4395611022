"""Load a directory laid out like NAB's `data/` (or any folder of `timestamp,value` CSVs) with a
NAB-style labels file (`{"category/file.csv": [[start, end], ...]}`) into a scoring corpus and a
(time, streams) matrix for the vectorised detectors.

Real metric streams are messy, and a file is read whole rather than rejected at its first odd row.
What cannot be taken as is becomes a note naming the file and line (`Corpus.notes`):

- a timestamp that steps back (a clock change, a restarted exporter): the rows stay in arrival
  order, which is the order a streaming detector sees them; for placing the label windows, each
  row's time is the latest time seen so far, so the series' clock never goes back;
- a timestamp that cannot be read: the row keeps the previous row's time (on the first row,
  an error: there is no time to keep);
- a value that is empty, not a number, NaN or infinite: the row is a missing point (NaN), which
  every detector skips (`streaming.Detector`).

Repeated timestamps and jumps forward (gaps) are kept as they are, without a note: NAB's own files
have both. Only what makes the whole file unusable (no header, unreadable labels) is an error.
"""

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
    notes: tuple[str, ...] = ()

    def matrix(self) -> np.ndarray:
        """(time, streams) values, NaN-padded after each stream's end."""
        length = max(len(v) for v in self.values)
        m = np.full((length, len(self.values)), np.nan)
        for j, v in enumerate(self.values):
            m[: len(v), j] = v
        return m


@dataclass(frozen=True, slots=True, kw_only=True)
class Stream:
    """One file read: its (never decreasing) timestamps, values (NaN = missing) and notes."""

    timestamps: np.ndarray
    values: np.ndarray
    notes: tuple[str, ...]


def _timestamp(text: str, where: str) -> np.datetime64:
    try:
        return np.datetime64(text.strip().replace(" ", "T"), "s")
    except ValueError as e:
        raise errors.InvalidInputError(
            f"{where}: {text!r} is not a timestamp like '2015-03-13 03:52:53'"
        ) from e


def _value(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        return np.nan
    return v if np.isfinite(v) else np.nan


def read_csv(path: Path) -> Stream:
    """NAB's data format: a header `timestamp,value`, then one row per point (see the module)."""
    stamps: list[np.datetime64] = []
    values: list[float] = []
    notes: list[str] = []
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:2]] != ["timestamp", "value"]:
            raise errors.InvalidInputError(f"{path}:1: expected the header 'timestamp,value'")
        latest: np.datetime64 | None = None
        for line, row in enumerate(reader, start=2):
            cells = [*row, "", ""][:2]
            try:
                ts = _timestamp(cells[0], f"{path}:{line}")
            except errors.InvalidInputError as e:
                if latest is None:
                    raise
                notes.append(f"{e}; the row keeps the previous time")
                ts = latest
            if latest is not None and ts < latest:
                notes.append(
                    f"{path}:{line}: timestamp {ts} steps back from {latest}; "
                    "rows kept in arrival order"
                )
            latest = ts if latest is None else max(latest, ts)
            v = _value(cells[1])
            if np.isnan(v):
                notes.append(f"{path}:{line}: value {cells[1]!r} is not a finite number; missing")
            stamps.append(latest)
            values.append(v)
    return Stream(
        timestamps=np.array(stamps, dtype="datetime64[s]"),
        values=np.array(values, dtype=np.float64),
        notes=tuple(notes),
    )


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
    series: list[nab_scoring.LabelledSeries] = []
    values: list[np.ndarray] = []
    notes: list[str] = []
    for key in keys:
        stream = read_csv(data_dir / key)
        ts, v = stream.timestamps, stream.values
        notes.extend(stream.notes)
        windows = tuple(
            (_timestamp(w[0], f"{labels_file}: {key}"), _timestamp(w[1], f"{labels_file}: {key}"))
            for w in labels[key]
        )
        series.append(nab_scoring.LabelledSeries(name=key, timestamps=ts, windows=windows))
        values.append(v)
    return Corpus(series=tuple(series), values=tuple(values), notes=tuple(notes))


def merge(*corpora: Corpus) -> Corpus:
    return Corpus(
        series=tuple(s for c in corpora for s in c.series),
        values=tuple(v for c in corpora for v in c.values),
        notes=tuple(n for c in corpora for n in c.notes),
    )
