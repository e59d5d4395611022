"""Journals: a crash can cut the file at any byte; what was whole stays, the rest is set aside."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from kopilot.governance import journals


@settings(max_examples=60, deadline=None)
@given(
    before=st.integers(min_value=0, max_value=6),
    after=st.integers(min_value=1, max_value=3),
    cut=st.floats(min_value=0.0, max_value=1.0),
    texts=st.lists(st.text(max_size=30), min_size=9, max_size=9),
)
def test_a_cut_at_any_byte_keeps_every_whole_record(
    before: int, after: int, cut: float, texts: list[str]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "j.jsonl"
        first = journals.Journal(path, fsync=False)
        for i in range(before):
            first.append({"n": i, "text": texts[i]})
        whole = path.read_bytes() if path.exists() else b""
        at = round(cut * len(whole))
        path.write_bytes(whole[:at])  # the crash
        tail = whole[:at].rsplit(b"\n", 1)[-1]
        whole_tail = bool(tail) and _whole(tail)  # cut right before a newline
        kept = whole[:at].count(b"\n") + whole_tail
        torn = 0 if whole_tail else len(tail)
        seen: list[dict[str, object]] = []
        second = journals.Journal(path, fsync=False, observe=lambda rec, _line: seen.append(rec))
        for j in range(after):
            second.append({"n": before + j, "text": texts[before + j]})
        lines = [json.loads(x) for x in path.read_bytes().splitlines()]
        assert [r["n"] for r in lines] == [*range(kept), *range(before, before + after)]
        assert [r["seq"] for r in lines] == list(range(1, len(lines) + 1))
        assert [r["text"] for r in lines[:kept]] == texts[:kept]
        assert seen == lines
        assert not second.skipped
        assert [r.length for r in second.repairs] == ([torn] if torn else [])


def _whole(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except ValueError:
        return False
