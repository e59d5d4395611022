"""Append-only JSONL files that several processes share: locked appends, torn tails set aside.

kopilot's governance files (the audit log, the approval queue) are journals:
- Every append takes an exclusive advisory lock on the file (`fcntl.flock`; a second writer waits
  its turn), reads what other writers appended since its last look, gives the record the next
  `seq`, and writes the whole line with one `write` (and an `fsync` when asked). Two writers
  therefore never repeat a `seq` and never interleave bytes.
- A crash mid-write can leave a last line without its newline: a torn tail. Whoever takes the lock
  next (a writer, or a reader that refreshes) copies those bytes to `<file>.torn` with a note
  (offset, length, the text) and truncates the file to the end of its last complete record, so
  the next record starts on a fresh line. A complete record is never lost: a tail that holds a
  whole JSON object and lacks only its newline gets the newline instead.
- A complete line that is not a JSON object (a hand edit, a disk fault) is skipped and listed in
  `skipped` with the file and the line; it never stops the journal.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kopilot.model import errors

Observer = Callable[[dict[str, Any], int], None]
"""Called with each complete record read or written, and its line number."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Skipped:
    """A line a journal did not take, and why."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}, line {self.line}: {self.reason}; skipped"


@dataclass(frozen=True, slots=True, kw_only=True)
class Repair:
    """A torn tail moved out of a journal."""

    file: str
    offset: int
    length: int
    kept_in: str

    def __str__(self) -> str:
        return (
            f"{self.file}: a torn last record ({self.length} bytes at offset {self.offset}, "
            f"a crash mid-write) was moved to {self.kept_in}"
        )


def torn_path(path: Path) -> Path:
    """Where the torn tails of `path` are kept."""
    return path.with_name(path.name + ".torn")


class Journal:
    """One append-only JSONL file. `observe` sees every complete record, in file order, once."""

    def __init__(
        self,
        path: Path,
        *,
        fsync: bool = True,
        observe: Observer | None = None,
        mode: int = 0o644,
    ) -> None:
        self.path = path
        self._fsync = fsync
        self._observe = observe
        self._mode = mode
        self._offset = 0
        self._lines = 0
        self.last_seq = 0
        """The highest `seq` in the file so far."""
        self.skipped: list[Skipped] = []
        self.repairs: list[Repair] = []
        path.parent.mkdir(parents=True, exist_ok=True)
        self.refresh()

    def refresh(self) -> None:
        """Read what was appended since the last look (setting a torn tail aside). A journal
        nobody appended to yet has no file: reading it creates none."""
        if not self.path.exists():
            return
        with self._locked() as fd:
            self._catch_up(fd)

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Write `record` with the next `seq` as one line; return it as written."""
        with self._locked() as fd:
            self._catch_up(fd)
            written = {**record, "seq": self.last_seq + 1}
            line = (json.dumps(written, sort_keys=True, default=str) + "\n").encode()
            _write_all(fd, line)
            if self._fsync:
                os.fsync(fd)
            self._offset += len(line)
            self._take(written, self._lines + 1)
        return written

    @contextlib.contextmanager
    def _locked(self) -> Iterator[int]:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, self._mode)
        except OSError as e:
            raise errors.InvalidInputError(
                f"{self.path}: cannot open it for appending ({e.strerror}); check the directory "
                "and its permissions"
            ) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _catch_up(self, fd: int) -> None:
        size = os.fstat(fd).st_size
        if size < self._offset:  # replaced or cut by hand: read it again from the start
            self._offset = self._lines = self.last_seq = 0
        if size == self._offset:
            return
        data = os.pread(fd, size - self._offset, self._offset)
        end = data.rfind(b"\n") + 1
        for raw in data[:end].split(b"\n")[:-1]:
            self._line_read(raw)
        self._offset += end
        tail = data[end:]
        if not tail:
            return
        if _is_record(tail):
            _write_all(fd, b"\n")  # a whole record that only lacks its newline: keep it
            self._offset += len(tail) + 1
            self._line_read(tail)
        else:
            self._set_aside(fd, tail)
        if self._fsync:
            os.fsync(fd)

    def _line_read(self, raw: bytes) -> None:
        line = self._lines + 1
        try:
            rec = json.loads(raw)
        except ValueError as e:
            self._lines = line
            self.skipped.append(Skipped(file=str(self.path), line=line, reason=f"not JSON ({e})"))
            return
        if not isinstance(rec, dict):
            self._lines = line
            self.skipped.append(
                Skipped(
                    file=str(self.path),
                    line=line,
                    reason=f"not a JSON object (a {type(rec).__name__})",
                )
            )
            return
        self._take(rec, line)

    def _take(self, rec: dict[str, Any], line: int) -> None:
        self._lines = line
        seq = rec.get("seq")
        if isinstance(seq, int) and not isinstance(seq, bool):
            self.last_seq = max(self.last_seq, seq)
        if self._observe is not None:
            self._observe(rec, line)

    def _set_aside(self, fd: int, tail: bytes) -> None:
        aside = torn_path(self.path)
        note = {
            "file": str(self.path),
            "offset": self._offset,
            "length": len(tail),
            "text": tail.decode("utf-8", errors="backslashreplace"),
        }
        keep = os.open(aside, os.O_RDWR | os.O_CREAT | os.O_APPEND, self._mode)
        try:
            size = os.fstat(keep).st_size
            # a note torn by an earlier crash keeps its own line: start this one on a new line
            fresh = b"\n" if size and os.pread(keep, 1, size - 1) != b"\n" else b""
            _write_all(keep, fresh + (json.dumps(note, sort_keys=True) + "\n").encode())
            os.fsync(keep)
        finally:
            os.close(keep)
        os.ftruncate(fd, self._offset)
        self.repairs.append(
            Repair(file=str(self.path), offset=self._offset, length=len(tail), kept_in=str(aside))
        )


def _is_record(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except ValueError:
        return False


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
