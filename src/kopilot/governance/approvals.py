"""Actions that wait for a person: queued with an ID, approved or rejected by `kopilot approve`, or expired.

The queue is an append-only JSONL file of events (`requested`, `approved`, `rejected`), so that the
controller and the `kopilot approve` command can share it, and a restart loses nothing. An action
approved by a person still passes every other guardrail when the loop applies it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kopilot.governance import verdicts
from kopilot.model import actions, errors


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    id: str
    time: float
    expires: float
    record: dict[str, Any]
    summary: str
    state: str
    """pending, approved, rejected, expired, or done."""
    by: str = ""


def request_id(action: actions.Action, time: float) -> str:
    body = json.dumps(actions.to_record(action), sort_keys=True, default=str) + f"@{time:.3f}"
    return hashlib.sha256(body.encode()).hexdigest()[:10]


class ApprovalQueue:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def _append(self, event: dict[str, Any]) -> None:
        line = (json.dumps(event, sort_keys=True, default=str) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def request(self, verdict: verdicts.Verdict, ttl_s: float) -> str:
        """Queue an action that needs approval; the same action at the same time gets the same ID."""
        rid = request_id(verdict.action, verdict.time)
        if rid in self.requests(verdict.time):
            return rid
        self._append(
            {
                "event": "requested",
                "id": rid,
                "time": verdict.time,
                "expires": verdict.time + ttl_s,
                "action": actions.to_record(verdict.action),
                "summary": actions.describe(verdict.action),
            }
        )
        return rid

    def decide(self, rid: str, *, approve: bool, by: str, now: float) -> Request:
        """A person's answer. Unknown, expired or already-decided IDs are errors that say so."""
        current = self.requests(now).get(rid)
        if current is None:
            known = ", ".join(sorted(self.requests(now))) or "none"
            raise errors.InvalidInputError(f"no approval request {rid!r}; requests: {known}")
        if current.state != "pending":
            raise errors.InvalidInputError(f"request {rid} is already {current.state}")
        self._append(
            {"event": "approved" if approve else "rejected", "id": rid, "time": now, "by": by}
        )
        return self.requests(now)[rid]

    def mark_done(self, rid: str, now: float) -> None:
        self._append({"event": "done", "id": rid, "time": now})

    def requests(self, now: float) -> dict[str, Request]:
        out: dict[str, Request] = {}
        if not self.path.exists():
            return out
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise errors.InvalidInputError(
                f"approval queue {self.path}: cannot read it ({e})"
            ) from e
        for raw in text.splitlines():
            try:
                ev = json.loads(raw)
            except ValueError:
                continue  # a torn last line from a crash: the event did not happen
            rid = ev.get("id")
            if ev.get("event") == "requested":
                out[rid] = Request(
                    id=rid,
                    time=ev["time"],
                    expires=ev["expires"],
                    record=ev["action"],
                    summary=ev["summary"],
                    state="pending",
                )
            elif rid in out:
                state = {"approved": "approved", "rejected": "rejected", "done": "done"}.get(
                    ev.get("event"), ""
                )
                if state:
                    r = out[rid]
                    out[rid] = Request(
                        id=r.id,
                        time=r.time,
                        expires=r.expires,
                        record=r.record,
                        summary=r.summary,
                        state=state,
                        by=ev.get("by", r.by),
                    )
        for rid, r in out.items():
            if r.state == "pending" and now >= r.expires:
                out[rid] = Request(
                    id=r.id,
                    time=r.time,
                    expires=r.expires,
                    record=r.record,
                    summary=r.summary,
                    state="expired",
                )
        return out

    def approved_actions(self, now: float) -> list[tuple[str, actions.Action]]:
        """Approved, not yet applied actions, oldest first (rebuilt from the queue file)."""
        return [
            (rid, actions.from_record(r.record))
            for rid, r in sorted(self.requests(now).items(), key=lambda kv: kv[1].time)
            if r.state == "approved"
        ]
