"""Reading trace CSVs row by row with errors that say file, line and reason."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

from kopilot.model import errors


class TraceError(errors.InvalidInputError):
    """A trace file is missing, has the wrong columns, or has a bad row."""


def rows(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, row) for each data row; check that the header has `required` columns."""
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as e:
        raise TraceError(f"{path}: cannot open the trace ({e.strerror})") from e
    with handle:
        reader = csv.DictReader(handle)
        try:
            header = reader.fieldnames or []
        except (UnicodeDecodeError, csv.Error) as e:
            raise TraceError(f"{path}: not a UTF-8 CSV file ({e})") from e
        missing = [c for c in required if c not in header]
        if missing:
            raise TraceError(
                f"{path}, line 1: missing column(s) {missing}; the header has {list(header)}"
            )
        try:
            for row in reader:
                if None in row:
                    raise TraceError(f"{path}, line {reader.line_num}: more fields than the header")
                if any(v is None for v in row.values()):
                    raise TraceError(
                        f"{path}, line {reader.line_num}: fewer fields than the header's "
                        f"{len(header)} columns; check for missing commas"
                    )
                yield reader.line_num, row
        except csv.Error as e:
            raise TraceError(f"{path}, line {reader.line_num}: {e}") from e
        except UnicodeDecodeError as e:
            raise TraceError(f"{path}: not UTF-8 text ({e.reason})") from e


def number(
    path: Path, line: int, row: dict[str, str], column: str, *, minimum: float | None = None
) -> float:
    """A finite float from a cell, or a TraceError naming the file, line and column."""
    text = (row.get(column) or "").strip()
    try:
        value = float(text)
    except ValueError:
        raise TraceError(f"{path}, line {line}: {column}={text!r} is not a number") from None
    if not math.isfinite(value):
        raise TraceError(f"{path}, line {line}: {column}={text!r} is not a finite number")
    if minimum is not None and value < minimum:
        raise TraceError(f"{path}, line {line}: {column}={value:g} is below {minimum:g}")
    return value
