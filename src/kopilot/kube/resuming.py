"""Restart safety: decision ids, the governor's ledger from the audit log, unfinished decisions.

- Every approved action gets a decision id: a hash of the action and the time it was decided,
  so the same decision always has the same id, also when read back from the audit log. The live
  World writes it to the object it touches (`kopilot.io/decision-id`) and does nothing when the
  object already carries it: applying a decision twice is harmless.
- On start, the governor's ledger is rebuilt from the audit log (`ledger_entries`), so rate
  limits, cool-downs and blast-radius limits hold across restarts.
- The loop writes a verdict to the audit log *before* it applies it, so a kopilot that died
  mid-cycle may have left approved decisions unapplied. `unfinished` returns the approved
  decisions of the last cycle in the log (if recent enough); replaying them applies the missing
  ones and skips, by their ids, those that had been applied.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kopilot.governance import families, governor, verdicts
from kopilot.model import actions

COUNTED = (str(verdicts.Outcome.APPROVED), str(verdicts.Outcome.DRY_RUN))
"""Outcomes the governor's ledger counts (it counts dry-run approvals too)."""
REPLAYABLE: tuple[type[actions.Action], ...] = (
    actions.Scale,
    actions.Cordon,
    actions.Restart,
    actions.Bind,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Unfinished:
    """An approved decision from the audit log that may not have been applied."""

    action: actions.Action
    time: float
    decision: str


def decision_id(action: actions.Action, time: float) -> str:
    """The id of `action` decided at `time` (the audit log's rounding: milliseconds)."""
    return _digest(actions.to_record(action), time)


def record_decision_id(record: Mapping[str, Any]) -> str:
    """The decision id of an audit-log record (equal to `decision_id` of its action and time)."""
    return _digest(record["action"], float(record["time"]))


def ledger_entries(records: Iterable[Mapping[str, Any]]) -> list[governor.LedgerEntry]:
    """The governor's ledger as the audit log recorded it (approved and dry-run verdicts)."""
    out: list[governor.LedgerEntry] = []
    for rec in records:
        if rec.get("outcome") not in COUNTED:
            continue
        body = rec.get("action") or {}
        service = body.get("service") if body.get("kind") in ("Scale", "Restart") else None
        out.append(
            governor.LedgerEntry(
                time=float(rec["time"]),
                kind=str(body.get("kind", "")),
                target=str(body.get("target", "")),
                service=str(service) if service else None,
                family=families.family_of(str(body.get("policy", ""))),
            )
        )
    return out


def unfinished(
    records: Iterable[Mapping[str, Any]], now: float, *, max_age_s: float
) -> list[Unfinished]:
    """The approved, replayable decisions of the last cycle that approved any, if that cycle is
    at most `max_age_s` old (older decisions are stale: the next cycle decides afresh)."""
    approved = [r for r in records if r.get("outcome") == str(verdicts.Outcome.APPROVED)]
    if not approved:
        return []
    last = max(float(r["time"]) for r in approved)
    if now - last > max_age_s:
        return []
    out: list[Unfinished] = []
    for rec in approved:
        if float(rec["time"]) != last:
            continue
        action = action_of(rec["action"])
        if action is not None:
            out.append(Unfinished(action=action, time=last, decision=record_decision_id(rec)))
    return out


def action_of(body: Mapping[str, Any]) -> actions.Action | None:
    """Rebuild a replayable action from its audit record; None for other kinds."""
    for cls in REPLAYABLE:
        if body.get("kind") == cls.kind:
            names = {f.name for f in dataclasses.fields(cls)}
            fields = {k: v for k, v in body.items() if k in names}
            if "gpu_indices" in fields:
                fields["gpu_indices"] = tuple(fields["gpu_indices"])
            return cls(**fields)
    return None


def _digest(record: Mapping[str, Any], time: float) -> str:
    normal = json.loads(json.dumps(record, sort_keys=True, default=str))
    text = json.dumps({"action": normal, "time": round(time, 3)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
