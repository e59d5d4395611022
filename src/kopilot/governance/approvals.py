"""Actions that wait for a person: queued with an id, approved or rejected, or expired.

The queue is an append-only JSONL journal (`journals.Journal`: locked appends, torn tails set
aside) of events, so that the controller and the approvers can share it and a restart loses
nothing:
- `requested` (written by the controller): the request id, the proposed action, its digest, the
  time it was proposed and when the request expires;
- `approved` / `rejected`: the id and the digest of the action the approver saw, who approved
  (a verified identity, `Approver`), and a free-text note;
- `done` / `ignored` (written by the controller): the approved action was judged, or was not
  applied and why.

An approval never carries an action of its own: it names a request, and it only counts if its
digest is the digest of the action that request proposed. The controller applies an approved
action only if its own audit log recorded the proposal (`AuditLog.proposed`), so lines written
by hand into the queue approve nothing. A damaged line is skipped with the file, the line and the
reason (`ApprovalQueue.skipped`); it never stops the queue. An approved action still passes every
other guardrail when the loop applies it.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kopilot.governance import digests, journals, verdicts
from kopilot.model import actions, errors

DECISIONS = {"approved": "approved", "rejected": "rejected"}
ENDINGS = {"done": "done", "ignored": "ignored"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Approver:
    """Who answered a request, as verified: never a name someone typed."""

    name: str
    """The verified identity: an OS user name, or a Kubernetes user name."""
    via: str
    """How it was verified: `os-user` (the process's effective uid) or `kubernetes`."""
    note: str = ""
    """Free text given with the answer (`kopilot approve --by`): recorded, never trusted."""


def os_user(note: str = "") -> Approver:
    """The OS user this process runs as (its effective uid), the identity outside a cluster."""
    uid = os.geteuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = f"uid:{uid}"
    return Approver(name=name, via="os-user", note=note)


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    id: str
    time: float
    expires: float
    record: dict[str, Any]
    summary: str
    digest: str
    """The digest of the proposed action (`digests.action_digest` of `record`)."""
    state: str
    """pending, approved, rejected, expired, done, or ignored."""
    by: str = ""
    via: str = ""
    note: str = ""
    namespace: str = ""
    """The namespace of the proposed action ('' for a node-level action)."""


def request_id(action: actions.Action, time: float) -> str:
    return digests.request_id(actions.to_record(action), time)


Shape = dict[str, type | tuple[type, ...]]
_REQUESTED: Shape = {
    "id": str,
    "time": (int, float),
    "expires": (int, float),
    "action": dict,
    "summary": str,
    "digest": str,
}
_DECIDED: Shape = {"id": str, "time": (int, float), "digest": str, "by": str}


class ApprovalQueue:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._requests: dict[str, Request] = {}
        self._rejected: list[journals.Skipped] = []
        self._journal = journals.Journal(path, fsync=True, observe=self._observe)

    @property
    def skipped(self) -> list[journals.Skipped]:
        """Lines that are not (valid) events, with file, line and reason, in file order."""
        return sorted([*self._journal.skipped, *self._rejected], key=lambda s: s.line)

    @property
    def repairs(self) -> list[journals.Repair]:
        return self._journal.repairs

    def request(self, verdict: verdicts.Verdict, ttl_s: float) -> str:
        """Queue an action that needs approval; the same action at the same time gets the same ID."""
        record = actions.to_record(verdict.action)
        rid = digests.request_id(record, verdict.time)
        self._journal.refresh()
        if rid in self._requests:
            return rid
        self._journal.append(
            {
                "event": "requested",
                "id": rid,
                "time": verdict.time,
                "expires": verdict.time + ttl_s,
                "action": record,
                "digest": digests.action_digest(record),
                "summary": actions.describe(verdict.action),
            }
        )
        return rid

    def decide(
        self,
        rid: str,
        *,
        approve: bool,
        approver: Approver,
        now: float,
        digest: str | None = None,
    ) -> Request:
        """A person's answer to request `rid`, as `approver`. `digest`, if given, is the digest of
        the action the person saw: the answer is refused if the request says otherwise.

        Unknown, expired, already-decided ids and a changed action are errors that say so.
        """
        current = self.pending(rid, now)
        if digest is not None and digest != current.digest:
            raise errors.InvalidInputError(
                f"request {rid} proposes a different action than the one you saw "
                f"({current.digest}, not {digest}); list the requests again"
            )
        self._journal.append(
            {
                "event": "approved" if approve else "rejected",
                "id": rid,
                "digest": current.digest,
                "time": now,
                "by": approver.name,
                "via": approver.via,
                "note": approver.note,
            }
        )
        return self.requests(now)[rid]

    def pending(self, rid: str, now: float) -> Request:
        """The request `rid`, waiting for an answer; InvalidInputError (saying why) otherwise."""
        everything = self.requests(now)
        current = everything.get(rid)
        if current is None:
            waiting = sorted(r.id for r in everything.values() if r.state == "pending")
            raise errors.InvalidInputError(
                f"no approval request {rid!r}; waiting: {', '.join(waiting) or 'none'} "
                "(run `kopilot approve` to list them)"
            )
        if current.state != "pending":
            raise errors.InvalidInputError(f"request {rid} is already {current.state}")
        return current

    def mark_done(self, rid: str, now: float) -> None:
        self._journal.append({"event": "done", "id": rid, "time": now})

    def ignore(self, rid: str, reason: str, now: float) -> None:
        """Close an approved request without applying it, saying why."""
        self._journal.append({"event": "ignored", "id": rid, "time": now, "reason": reason})

    def requests(self, now: float) -> dict[str, Request]:
        """Every request and its state at `now` (rebuilt from the file, other writers included)."""
        self._journal.refresh()
        return {
            rid: dataclasses.replace(r, state="expired")
            if r.state == "pending" and now >= r.expires
            else r
            for rid, r in self._requests.items()
        }

    def approved(self, now: float) -> list[Request]:
        """Approved, not yet applied requests, oldest first."""
        return sorted(
            (r for r in self.requests(now).values() if r.state == "approved"),
            key=lambda r: r.time,
        )

    def approved_actions(self, now: float) -> list[tuple[str, actions.Action]]:
        """The actions of `approved` requests (a request whose action cannot be rebuilt is skipped)."""
        out: list[tuple[str, actions.Action]] = []
        for r in self.approved(now):
            try:
                out.append((r.id, actions.from_record(r.record)))
            except (TypeError, ValueError, KeyError) as e:
                self._skip(0, f"request {r.id}: its action cannot be rebuilt ({e})")
        return out

    def _skip(self, line: int, reason: str) -> None:
        self._rejected.append(journals.Skipped(file=str(self.path), line=line, reason=reason))

    def _observe(self, ev: dict[str, Any], line: int) -> None:
        event = ev.get("event")
        if event == "requested":
            self._requested(ev, line)
            return
        rid = ev.get("id")
        current = self._requests.get(rid) if isinstance(rid, str) else None
        if event not in DECISIONS and event not in ENDINGS:
            self._skip(line, f"unknown event {event!r}")
        elif current is None:
            self._skip(line, f"{event} names no request in this queue ({rid!r})")
        elif event in DECISIONS:
            self._decided(ev, line, current)
        elif current.state != "approved":
            self._skip(line, f"{event} for request {rid}, which is {current.state}, not approved")
        else:
            self._requests[current.id] = dataclasses.replace(current, state=ENDINGS[event])

    def _requested(self, ev: dict[str, Any], line: int) -> None:
        problem = _missing(ev, _REQUESTED)
        if problem is None:
            rid = ev["id"]
            if digests.request_id(ev["action"], float(ev["time"])) != rid:
                problem = f"request {rid}: its id is not the id of its action and time"
            elif digests.action_digest(ev["action"]) != ev["digest"]:
                problem = f"request {rid}: its digest is not the digest of its action"
            elif rid in self._requests:
                problem = f"request {rid} is already in the queue"
            else:
                try:
                    namespace = actions.from_record(ev["action"]).namespace
                except (TypeError, ValueError, KeyError) as e:
                    problem = f"request {rid}: its action cannot be rebuilt ({e})"
        if problem is not None:
            self._skip(line, problem)
            return
        self._requests[ev["id"]] = Request(
            id=ev["id"],
            time=float(ev["time"]),
            expires=float(ev["expires"]),
            record=ev["action"],
            summary=ev["summary"],
            digest=ev["digest"],
            state="pending",
            namespace=namespace,
        )

    def _decided(self, ev: dict[str, Any], line: int, current: Request) -> None:
        problem = _missing(ev, _DECIDED)
        if problem is None:
            if current.state != "pending":
                problem = f"request {current.id} is already {current.state}"
            elif ev["digest"] != current.digest:
                problem = (
                    f"{ev['event']} for request {current.id} names another action "
                    f"({ev['digest']}, the request proposed {current.digest})"
                )
            elif float(ev["time"]) >= current.expires:
                problem = f"{ev['event']} for request {current.id} came after it expired"
        if problem is not None:
            self._skip(line, problem)
            return
        self._requests[current.id] = dataclasses.replace(
            current,
            state=DECISIONS[ev["event"]],
            by=ev["by"],
            via=str(ev.get("via", "")),
            note=str(ev.get("note", "")),
        )


def _missing(ev: dict[str, Any], shape: Shape) -> str | None:
    """What is wrong with an event's keys and value types, or None."""
    for key, kind in shape.items():
        if key not in ev:
            return f"{ev.get('event')} event without {key!r}"
        value = ev[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"{ev.get('event')} event: {key!r} is not a {_name(kind)}"
    return None


def _name(kind: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
