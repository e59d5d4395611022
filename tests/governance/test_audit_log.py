"""The audit log is append-only JSONL; a crash mid-write loses at most the record being written."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest

from kopilot.governance import audit, verdicts
from kopilot.model import errors
from tests.builders import scale


def _verdict(i: int) -> verdicts.Verdict:
    return verdicts.Verdict(
        action=scale("ml/svc", i), outcome=verdicts.Outcome.APPROVED, reason="ok", time=float(i)
    )


def test_records_round_trip_with_sequence_numbers(tmp_path: Path) -> None:
    log = audit.AuditLog(tmp_path / "a.jsonl")
    for i in range(3):
        log.append(_verdict(i))
    recs = list(audit.read(tmp_path / "a.jsonl"))
    assert [r["seq"] for r in recs] == [1, 2, 3]
    assert recs[2]["action"]["replicas"] == 2
    assert recs[0]["summary"].startswith("scale ml/svc 4 -> 0")


def test_reopening_continues_the_sequence(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    audit.AuditLog(path).append(_verdict(1))
    audit.AuditLog(path).append(_verdict(2))
    assert [r["seq"] for r in audit.read(path)] == [1, 2]


def _torn_second_record(path: Path) -> bytes:
    """Two records appended, then the last 25 bytes cut (a crash mid-write); the whole bytes."""
    log = audit.AuditLog(path)
    log.append(_verdict(1))
    log.append(_verdict(2))
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) - 25])
    return whole


def test_a_torn_last_line_is_skipped_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _torn_second_record(path)  # the crash cut the second record
    torn: list[audit.TornRecord] = []
    recs = list(audit.read(path, torn=torn))
    assert [r["seq"] for r in recs] == [1]
    assert torn and torn[0].line == 2


def test_a_bad_line_in_the_middle_is_an_error_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"seq": 1}\nnot json\n{"seq": 3}\n')
    with pytest.raises(errors.InvalidInputError, match="line 2"):
        list(audit.read(path))


def _writer(path: str, worker: int) -> None:
    log = audit.AuditLog(Path(path))
    for i in range(200):
        log.append(_verdict(worker * 1000 + i))


def _three_writers(path: Path) -> None:
    """Three forked processes append 200 records each to `path`, all at once."""
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(path), w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()


def test_concurrent_writers_never_interleave_records(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _three_writers(path)
    lines = path.read_text().splitlines()
    assert len(lines) == 600
    assert all(json.loads(line)["action"]["kind"] == "Scale" for line in lines)


def test_a_writer_killed_mid_stream_leaves_only_whole_records(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    ctx = multiprocessing.get_context("fork")
    proc = ctx.Process(target=_writer, args=(str(path), 1))
    proc.start()
    while not path.exists() or path.stat().st_size < 2000:
        pass
    os.kill(proc.pid, 9)
    proc.join()
    torn: list[audit.TornRecord] = []
    recs = list(audit.read(path, torn=torn))
    assert recs and not torn
    assert all(r["action"]["kind"] == "Scale" for r in recs)


def test_an_append_after_a_torn_tail_starts_on_a_fresh_line(tmp_path: Path) -> None:
    """A crash tore the last record; the restarted writer sets it aside and appends cleanly."""
    path = tmp_path / "a.jsonl"
    whole = _torn_second_record(path)
    restarted = audit.AuditLog(path)
    restarted.append(_verdict(3))
    restarted.append(_verdict(4))
    torn: list[audit.TornRecord] = []
    recs = list(audit.read(path, torn=torn))
    assert [r["action"]["replicas"] for r in recs] == [1, 3, 4] and not torn
    assert [r["seq"] for r in recs] == [1, 2, 3]
    [repair] = restarted.repairs
    assert repair.offset == whole.index(b"\n") + 1
    [note] = [json.loads(x) for x in (tmp_path / "a.jsonl.torn").read_text().splitlines()]
    assert whole[repair.offset :].decode().startswith(note["text"])


def test_a_whole_record_missing_only_its_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    audit.AuditLog(path).append(_verdict(1))
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    log = audit.AuditLog(path)
    log.append(_verdict(2))
    assert [r["seq"] for r in audit.read(path)] == [1, 2] and not log.repairs


def test_two_open_writers_never_repeat_a_seq(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    first, second = audit.AuditLog(path), audit.AuditLog(path)
    for i in range(3):
        first.append(_verdict(i))
        second.append(_verdict(10 + i))
    assert [r["seq"] for r in audit.read(path)] == [1, 2, 3, 4, 5, 6]


def test_concurrent_processes_never_repeat_a_seq(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _three_writers(path)
    seqs = [r["seq"] for r in audit.read(path)]
    assert seqs == list(range(1, 601))


def test_a_record_glued_to_a_torn_one_by_an_older_kopilot_is_read(tmp_path: Path) -> None:
    """Logs written before torn tails were set aside hold `torn{...}` lines: the record is kept."""
    path = tmp_path / "a.jsonl"
    audit.AuditLog(path).append(_verdict(1))
    whole = path.read_bytes()
    path.write_bytes(whole + whole[:40] + whole.replace(b'"seq": 1', b'"seq": 2') + whole)
    torn: list[audit.TornRecord] = []
    assert [r["seq"] for r in audit.read(path, torn=torn)] == [1, 2, 1]
    assert [t.line for t in torn] == [2] and torn[0].text == whole[:40].decode()


def test_a_torn_note_in_the_sidecar_keeps_its_own_line(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    (tmp_path / "a.jsonl.torn").write_bytes(b'{"file": "a.jsonl", "off')  # a crash mid-note
    path.write_bytes(b'{"seq": 1}\n{"seq": 2, "tim')
    audit.AuditLog(path).append(_verdict(3))
    lines = (tmp_path / "a.jsonl.torn").read_bytes().split(b"\n")
    assert (
        lines[0] == b'{"file": "a.jsonl", "off'
        and json.loads(lines[1])["text"] == '{"seq": 2, "tim'
    )
