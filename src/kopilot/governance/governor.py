"""The governor: every proposed action passes the guardrails or is refused, with the reason.

The governor keeps a ledger of what it let through (time, kind, target) so that rate limits,
cool-downs and blast-radius limits hold across cycles. It never rewrites an action: it approves
it as proposed or refuses it and says which rule stopped it.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterable
from dataclasses import dataclass

from kopilot.governance import families, guardrails, verdicts
from kopilot.model import actions, cluster


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerEntry:
    time: float
    kind: str
    target: str
    service: str | None
    family: str | None = None


class Governor:
    """Reviews actions against `Guardrails`; remembers approvals for windowed limits."""

    def __init__(self, rails: guardrails.Guardrails) -> None:
        self.rails = rails
        self._ledger: collections.deque[LedgerEntry] = collections.deque()
        self._cordoned: set[str] = set()
        """Nodes this governor let kopilot cordon and not uncordon yet (the snapshot may lag)."""

    def review(
        self,
        proposed: Iterable[actions.Action],
        snapshot: cluster.ClusterSnapshot,
        now: float,
        *,
        approved_by_person: bool = False,
    ) -> list[verdicts.Verdict]:
        """Judge each action in order; earlier approvals in the same batch count against later ones.

        `approved_by_person` skips only the approval requirement: every other guardrail still holds.
        """
        self._expire(now)
        cordoned = {n.name for n in snapshot.nodes if n.unschedulable} | self._cordoned
        out: list[verdicts.Verdict] = []
        for action in proposed:
            refusal = self._refusal(action, snapshot, cordoned, now)
            if refusal is not None:
                out.append(self._verdict(action, verdicts.Outcome.REFUSED, refusal, now))
                continue
            if self._needs_approval(action) and not approved_by_person:
                out.append(
                    self._verdict(
                        action,
                        verdicts.Outcome.PENDING_APPROVAL,
                        f"{action.kind} needs a person's approval",
                        now,
                    )
                )
                continue
            self._ledger.append(
                LedgerEntry(
                    time=now,
                    kind=action.kind,
                    target=action.target,
                    service=_service_of(action),
                    family=families.family_of(action.policy),
                )
            )
            if isinstance(action, actions.Cordon):
                if action.uncordon:
                    cordoned.discard(action.node)
                    self._cordoned.discard(action.node)
                else:
                    cordoned.add(action.node)
                    self._cordoned.add(action.node)
            if self.rails.dry_run:
                out.append(
                    self._verdict(
                        action, verdicts.Outcome.DRY_RUN, "within guardrails; dry-run", now
                    )
                )
            else:
                out.append(
                    self._verdict(action, verdicts.Outcome.APPROVED, "within guardrails", now)
                )
        return out

    def remember(self, entries: Iterable[LedgerEntry]) -> None:
        """Restore the ledger (e.g. from the audit log after a restart)."""
        self._ledger.extend(sorted(entries, key=lambda e: e.time))

    def _needs_approval(self, action: actions.Action) -> bool:
        if action.kind in self.rails.require_approval:
            return True
        family = self.rails.families.get(families.family_of(action.policy) or "")
        return family is not None and action.kind in family.require_approval

    def _verdict(
        self, action: actions.Action, outcome: verdicts.Outcome, reason: str, now: float
    ) -> verdicts.Verdict:
        return verdicts.Verdict(action=action, outcome=outcome, reason=reason, time=now)

    def _expire(self, now: float) -> None:
        horizon = max([self.rails.window_s, *self.rails.cooldown_s.values()])
        while self._ledger and self._ledger[0].time <= now - horizon:
            self._ledger.popleft()

    def _in_window(self, now: float) -> list[LedgerEntry]:
        return [e for e in self._ledger if e.time > now - self.rails.window_s]

    def _refusal(
        self,
        action: actions.Action,
        snapshot: cluster.ClusterSnapshot,
        cordoned: set[str],
        now: float,
    ) -> str | None:
        r = self.rails
        if r.allowed_kinds is not None and action.kind not in r.allowed_kinds:
            return f"action kind {action.kind} is not in the allow-list {sorted(r.allowed_kinds)}"
        if r.allowed_namespaces is not None and action.namespace not in r.allowed_namespaces:
            where = action.namespace or "(cluster-scoped)"
            return f"namespace {where} is not in the allow-list {sorted(r.allowed_namespaces)}"
        recent = self._in_window(now)
        name = families.family_of(action.policy)
        family = r.families.get(name or "")
        if family is not None and not family.enabled:
            return f"family {name} is switched off in the policy file"
        if family is not None and family.max_actions is not None:
            done = sum(1 for e in recent if e.family == name)
            if done >= family.max_actions:
                return f"family limit: {done} {name} actions in the last {r.window_s:.0f} s (max {family.max_actions})"
        limit = r.max_per_kind.get(action.kind)
        same_kind = sum(1 for e in recent if e.kind == action.kind)
        if limit is not None and same_kind >= limit:
            return f"rate limit: {same_kind} {action.kind} actions in the last {r.window_s:.0f} s (max {limit})"
        same_target = sum(1 for e in recent if e.target == action.target)
        if same_target >= r.max_per_target:
            return f"rate limit: {same_target} actions on {action.target} in the last {r.window_s:.0f} s (max {r.max_per_target})"
        cooldown = r.cooldown_s.get(action.kind, 0.0)
        if cooldown > 0:
            last = max(
                (
                    e.time
                    for e in self._ledger
                    if e.kind == action.kind and e.target == action.target
                ),
                default=-math.inf,
            )
            if now - last < cooldown:
                return f"cool-down: last {action.kind} on {action.target} was {now - last:.0f} s ago (min {cooldown:.0f} s)"
        return self._specific_refusal(action, snapshot, cordoned, recent)

    def _specific_refusal(
        self,
        action: actions.Action,
        snapshot: cluster.ClusterSnapshot,
        cordoned: set[str],
        recent: list[LedgerEntry],
    ) -> str | None:
        r = self.rails
        match action:
            case actions.Scale():
                svc = snapshot.service(action.service)
                if svc is None:
                    return f"unknown service {action.service}"
                if not svc.min_replicas <= action.replicas <= svc.max_replicas:
                    return f"bounds: {action.replicas} replicas is outside [{svc.min_replicas}, {svc.max_replicas}]"
                if (
                    r.max_scale_step is not None
                    and abs(action.replicas - svc.replicas) > r.max_scale_step
                ):
                    return f"step limit: {svc.replicas} -> {action.replicas} changes more than {r.max_scale_step} replicas"
            case actions.Cordon(uncordon=False):
                if action.node not in cordoned and len(cordoned) >= r.max_cordoned_nodes:
                    return f"blast radius: {len(cordoned)} nodes already cordoned (max {r.max_cordoned_nodes})"
            case actions.Restart(service=str() as service):
                svc = snapshot.service(service)
                replicas = svc.replicas if svc is not None else 1
                disrupted = sum(1 for e in recent if e.kind == "Restart" and e.service == service)
                allowed = max(1, math.floor(replicas * r.max_disrupted_fraction))
                if disrupted + 1 > allowed:
                    return (
                        f"blast radius: {disrupted} of {replicas} replicas of {service} already "
                        f"restarted in the window (max {allowed}, {r.max_disrupted_fraction:.0%})"
                    )
            case _:
                pass
        return None


def _service_of(action: actions.Action) -> str | None:
    match action:
        case actions.Scale():
            return action.service
        case actions.Restart():
            return action.service
        case _:
            return None
