"""The append-only audit log: one JSON line per verdict, approved or refused, with its reason.

Each record is written with a single `write` on a file opened with O_APPEND, so concurrent writers
never interleave and a crash leaves at most one torn line at the end. Readers skip a torn last line
(and say so) instead of failing, so nothing already recorded is lost.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kopilot.governance import verdicts
from kopilot.model import actions, errors

SKIPPED = "skipped"
"""The outcome of a record that holds no verdict: a family that did not run (see `note_skipped`)."""


def record_of(verdict: verdicts.Verdict, seq: int) -> dict[str, Any]:
    return {
        "seq": seq,
        "time": round(verdict.time, 3),
        "outcome": str(verdict.outcome),
        "verdict": verdict.reason,
        "action": actions.to_record(verdict.action),
        "summary": actions.describe(verdict.action),
    }


class AuditLog:
    """Appends verdicts to a JSONL file (or keeps them in memory when `path` is None)."""

    def __init__(self, path: Path | None, *, fsync: bool = False, fresh: bool = False) -> None:
        """`fresh=True` starts a new log (a simulation run); otherwise an existing log is continued."""
        self.path = path
        self._fsync = fsync
        self._seq = 0
        self.records: list[dict[str, Any]] = []
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            if fresh and path.exists():
                path.unlink()
            self._seq = sum(1 for _ in read(path)) if path.exists() else 0

    def append(self, verdict: verdicts.Verdict) -> dict[str, Any]:
        self._seq += 1
        return self._write(record_of(verdict, self._seq))

    def note_skipped(self, family: str, reason: str, now: float) -> dict[str, Any]:
        """Record that a family did not run this cycle, and why (outcome `skipped`, no action)."""
        self._seq += 1
        return self._write(
            {
                "seq": self._seq,
                "time": round(now, 3),
                "outcome": SKIPPED,
                "family": family,
                "verdict": reason,
                "summary": f"{family}: no action this cycle",
            }
        )

    def _write(self, rec: dict[str, Any]) -> dict[str, Any]:
        self.records.append(rec)
        if self.path is not None:
            line = (json.dumps(rec, sort_keys=True, default=str) + "\n").encode()
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, line)
                if self._fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
        return rec


@dataclass(frozen=True, slots=True, kw_only=True)
class TornRecord:
    line: int
    text: str


def read(path: Path, *, torn: list[TornRecord] | None = None) -> Iterator[dict[str, Any]]:
    """Yield the records of an audit log. A torn line is skipped (and listed in `torn` if given).

    A malformed line that is not the last one means the file was edited by hand: that is an error.
    """
    try:
        lines = path.read_bytes().split(b"\n")
    except OSError as e:
        raise errors.InvalidInputError(f"audit log {path}: cannot read it ({e.strerror})") from e
    if lines and lines[-1] == b"":
        lines.pop()
    for i, raw in enumerate(lines, start=1):
        try:
            rec = json.loads(raw)
            if not isinstance(rec, dict):
                raise ValueError("not an object")
        except ValueError as e:
            if i == len(lines):
                if torn is not None:
                    torn.append(TornRecord(line=i, text=raw.decode(errors="replace")))
                return
            raise errors.InvalidInputError(
                f"audit log {path}, line {i}: not a JSON record ({e}); the log was changed by hand"
            ) from e
        yield rec
