"""The append-only audit log: one JSON line per verdict, approved or refused, with its reason.

The log is a `journals.Journal`: each record is appended under an exclusive file lock with the
next `seq` (two writers never repeat one), as one `write` of a whole line, and a torn last line
left by a crash is set aside (to `<log>.torn`) before the next append, so it is never glued to the
next record. Readers skip a torn last line (and say so) instead of failing, so nothing already
recorded is lost.

Besides verdicts the log holds notes about governance itself (a policy file reloaded or refused):
they have the same keys as a verdict record, with the pseudo action kind `Policy`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kopilot.governance import digests, journals, verdicts
from kopilot.model import actions, errors

SKIPPED = "skipped"
"""The outcome of a record that holds no verdict: a family that did not run (see `note_skipped`)."""
NOTE_KIND = "Policy"
"""The action kind of a governance note (not an action anyone applies)."""


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
        """`fresh=True` starts a new log (a simulation run); otherwise an existing log is continued.

        `fsync=True` makes each record durable before `append` returns (what `kopilot run` uses).
        """
        self.path = path
        self._seq = 0
        self._proposed: set[str] = set()
        self.records: list[dict[str, Any]] = []
        self._journal: journals.Journal | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            if fresh and path.exists():
                path.unlink()
            self._journal = journals.Journal(path, fsync=fsync, observe=self._observe)

    @property
    def repairs(self) -> list[journals.Repair]:
        """Torn tails this log set aside (a crash mid-write), oldest first."""
        return self._journal.repairs if self._journal is not None else []

    @property
    def skipped(self) -> list[journals.Skipped]:
        """Lines of the file that are not records (a hand edit), with their line numbers."""
        return self._journal.skipped if self._journal is not None else []

    def append(self, verdict: verdicts.Verdict) -> dict[str, Any]:
        return self._write(record_of(verdict, 0))

    def note_skipped(self, family: str, reason: str, now: float) -> dict[str, Any]:
        """Record that a family did not run this cycle, and why (outcome `skipped`, no action)."""
        return self._write(
            {
                "seq": 0,
                "time": round(now, 3),
                "outcome": SKIPPED,
                "family": family,
                "verdict": reason,
                "summary": f"{family}: no action this cycle",
            }
        )

    def note(
        self, *, time: float, outcome: str, target: str, summary: str, detail: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Record something governance itself did (e.g. a policy reload) at `time`."""
        return self._write(
            {
                "seq": 0,
                "time": round(time, 3),
                "outcome": outcome,
                "verdict": summary,
                "action": {"kind": NOTE_KIND, "target": target},
                "summary": summary,
                NOTE_KIND.lower(): dict(detail),
            }
        )

    def proposed(self) -> frozenset[str]:
        """Request ids of every action this log recorded as waiting for a person's approval."""
        if self._journal is not None:
            self._journal.refresh()
        return frozenset(self._proposed)

    def _write(self, rec: dict[str, Any]) -> dict[str, Any]:
        if self._journal is not None:
            rec = self._journal.append(rec)
        else:
            self._seq += 1
            rec = {**rec, "seq": self._seq}
            self._observe(rec, self._seq)
        self.records.append(rec)
        return rec

    def _observe(self, rec: dict[str, Any], _line: int) -> None:
        if rec.get("outcome") != str(verdicts.Outcome.PENDING_APPROVAL):
            return
        body, time = rec.get("action"), rec.get("time")
        if isinstance(body, dict) and isinstance(time, int | float):
            self._proposed.add(digests.request_id(body, float(time)))


@dataclass(frozen=True, slots=True, kw_only=True)
class TornRecord:
    line: int
    text: str


def read(path: Path, *, torn: list[TornRecord] | None = None) -> Iterator[dict[str, Any]]:
    """Yield the records of an audit log. A torn line is skipped (and listed in `torn` if given).

    A line that is a torn record with a whole record glued after it (what a crash followed by an
    append left before appends set torn tails aside) yields the whole record and lists the torn
    part. Any other malformed line that is not the last one means the file was edited by hand:
    that is an error naming the line.
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
            glued = _glued(raw)
            if glued is None and i == len(lines):
                if torn is not None:
                    torn.append(TornRecord(line=i, text=raw.decode(errors="replace")))
                return
            if glued is not None:
                cut, rec = glued
                if torn is not None:
                    torn.append(TornRecord(line=i, text=raw[:cut].decode(errors="replace")))
                yield rec
                continue
            raise errors.InvalidInputError(
                f"audit log {path}, line {i}: not a JSON record ({e}); the log was changed by hand"
            ) from e
        yield rec


def _glued(raw: bytes) -> tuple[int, dict[str, Any]] | None:
    """(where it starts, the record) of a whole record that ends `raw` after a torn prefix."""
    start = raw.find(b'{"', 1)
    while start > 0:
        try:
            rec = json.loads(raw[start:])
        except ValueError:
            rec = None
        if isinstance(rec, dict) and "seq" in rec:
            return start, rec
        start = raw.find(b'{"', start + 1)
    return None
