"""The live loop: elect, resume, run cycles; what `kopilot run` drives, one `step` per interval.

Each `step(now)`:
1. ticks the leader elector (if any); a follower does nothing else;
2. on becoming the leader (or on the first step without an elector) it restores the governor's
   ledger from the audit log and replays the unfinished decisions of the last audited cycle
   (`kopilot.kube.resuming`): decision ids make that replay a no-op for what was applied;
3. runs one cycle (`kopilot.loop.cycles.run_cycle`): snapshot, policies, governor, audit, apply.

Faults in a cycle (an unreachable API server, caches not synced) are reported in the `Step` and
the next step tries again: the loop never dies of a temporary error.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kopilot.governance import approvals, audit, governor
from kopilot.kits import clocks
from kopilot.kube import leases, resuming
from kopilot.loop import cycles, worlds
from kopilot.model import actions, cluster, errors

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """What one step did."""

    time: float
    leader: bool
    report: cycles.CycleReport | None = None
    resumed: tuple[str, ...] = ()
    """What replaying unfinished decisions did, one line per decision."""
    restored: int = 0
    """Ledger entries restored from the audit log in this step."""
    error: str | None = None
    duration_s: float = 0.0
    problems: tuple[str, ...] = field(default=())
    applied: tuple[tuple[str, bool], ...] = ()
    """(kind, ok) of each action the World carried out in this step's cycle."""


class Runner:
    """Runs the loop against a World, as the leader or not at all."""

    def __init__(
        self,
        world: worlds.World,
        slots: Sequence[cycles.PolicySlot],
        gov: governor.Governor,
        audit_log: audit.AuditLog,
        *,
        clock: clocks.Clock,
        elector: leases.LeaseElector | None = None,
        resume_max_age_s: float = 60.0,
        queue: approvals.ApprovalQueue | None = None,
        approval_ttl_s: float = 3600.0,
    ) -> None:
        self.world = world
        self.slots = list(slots)
        self.gov = gov
        self.audit_log = audit_log
        self._clock = clock
        self.elector = elector
        self.resume_max_age_s = resume_max_age_s
        self.queue = queue
        self.approval_ttl_s = approval_ttl_s
        self._leading = False
        self._remembered: set[tuple[float, str, str]] = set()

    def step(self, now: float | None = None) -> Step:
        start = self._clock.now()
        t = start if now is None else now
        # The lease runs on the elector's own clock (wall time), whatever the loop's time is.
        leader = self.elector.tick() if self.elector is not None else True
        if not leader:
            if self._leading:
                log.warning("lost the leadership: standing by")
            self._leading = False
            return Step(time=t, leader=False, duration_s=self._clock.now() - start)
        restored = 0
        resumed: tuple[str, ...] = ()
        if not self._leading:
            self._leading = True
            try:
                restored, resumed = self._take_over(t)
            except errors.KopilotError as e:
                self._leading = False  # try the take-over again next step
                return Step(time=t, leader=True, error=str(e), duration_s=self._clock.now() - start)
        counting = _Counting(self.world)
        try:
            report = cycles.run_cycle(
                counting,
                self.slots,
                self.gov,
                self.audit_log,
                t,
                queue=self.queue,
                approval_ttl_s=self.approval_ttl_s,
            )
        except errors.KopilotError as e:
            log.warning("cycle at %.0f failed: %s", t, e)
            return Step(
                time=t,
                leader=True,
                error=str(e),
                restored=restored,
                resumed=resumed,
                duration_s=self._clock.now() - start,
            )
        for verdict in report.judged:
            if str(verdict.outcome) in resuming.COUNTED:
                self._remembered.add(
                    (round(verdict.time, 3), verdict.action.kind, verdict.action.target)
                )
        problems = tuple(getattr(self.world, "problems", ()))
        return Step(
            time=t,
            leader=True,
            report=report,
            restored=restored,
            resumed=resumed,
            duration_s=self._clock.now() - start,
            problems=problems,
            applied=tuple(counting.applied),
        )

    def restore_ledger(self) -> int:
        """Add the audit log's approvals the governor does not know yet; how many were added."""
        path = self.audit_log.path
        if path is None or not Path(path).exists():
            return 0
        fresh: list[governor.LedgerEntry] = []
        for entry in resuming.ledger_entries(audit.read(Path(path))):
            key = (round(entry.time, 3), entry.kind, entry.target)
            if key not in self._remembered:
                self._remembered.add(key)
                fresh.append(entry)
        self.gov.remember(fresh)
        return len(fresh)

    def _take_over(self, now: float) -> tuple[int, tuple[str, ...]]:
        restored = self.restore_ledger()
        path = self.audit_log.path
        if path is None or not Path(path).exists():
            return restored, ()
        lines: list[str] = []
        pending = resuming.unfinished(
            list(audit.read(Path(path))), now, max_age_s=self.resume_max_age_s
        )
        for item in pending:
            result = self.world.apply(item.action, item.time)
            lines.append(
                f"decision {item.decision} ({item.action.kind} {item.action.target}): "
                f"{result.detail or ('ok' if result.ok else 'failed')}"
            )
        if restored or lines:
            log.info(
                "took over: %d ledger entries restored; %d decisions replayed", restored, len(lines)
            )
        return restored, tuple(lines)

    def release(self) -> None:
        """Give up the leadership (clean shutdown)."""
        if self.elector is not None:
            self.elector.release()
        self._leading = False


class _Counting:
    """A World that passes everything through and notes each apply's kind and outcome."""

    def __init__(self, world: worlds.World) -> None:
        self._world = world
        self.applied: list[tuple[str, bool]] = []

    def snapshot(self, now: float) -> cluster.ClusterSnapshot:
        return self._world.snapshot(now)

    def apply(self, action: actions.Action, now: float) -> worlds.Applied:
        result = self._world.apply(action, now)
        self.applied.append((action.kind, result.ok))
        return result
