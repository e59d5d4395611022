"""Gang scheduling: all of a distributed job's pods are placed, or none is.

A gang is tried in one step against the state: its members are placed one after another (largest
first, so the hardest fit is tried while the most room is left) and, if any member fits nowhere,
every member already placed is released before the step ends. So a gang never holds GPUs while it
waits, and two gangs cannot deadlock each other by each holding part of what the other needs: the
one tried first takes everything it needs or nothing, and the other sees a state with no partial
allocation in it. `GangQueue` collects members until the gang is complete and retries waiting
gangs in arrival order.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from kopilot.model import cluster, errors
from kopilot.scheduling import demands, framework, placing


@dataclass(frozen=True, slots=True, kw_only=True)
class GangDecision:
    """A gang's outcome: every member's placement, or why it cannot start now."""

    gang: str
    members: tuple[str, ...]
    placements: tuple[framework.Placement, ...] = ()
    blocker: framework.Unschedulable | None = None

    @property
    def placed(self) -> bool:
        return self.blocker is None

    def reason(self) -> str:
        if self.blocker is None:
            nodes = sorted({p.node for p in self.placements})
            return f"gang {self.gang}: all {len(self.members)} pods placed on {', '.join(nodes)}"
        return (
            f"gang {self.gang}: waiting, nothing held; member {self.blocker.pod} fits nowhere "
            f"with the others placed: {self.blocker.reason()}"
        )


def schedule_gang(
    scheduler: placing.Scheduler, gang: str, members: Sequence[demands.Demand]
) -> GangDecision:
    """Place all members or none; on failure the state is exactly as before."""
    if not members:
        raise errors.InvalidInputError(f"gang {gang}: has no members")
    ordered = sorted(members, key=lambda d: (-d.gpu_milli_total, -d.mig_count, -d.cpu_milli, d.pod))
    placed: list[framework.Placement] = []
    for member in ordered:
        decision = scheduler.schedule(member)
        if isinstance(decision, framework.Unschedulable):
            for p in reversed(placed):
                scheduler.release(p.pod)
            return GangDecision(gang=gang, members=tuple(d.pod for d in members), blocker=decision)
        placed.append(decision)
    return GangDecision(gang=gang, members=tuple(d.pod for d in members), placements=tuple(placed))


class GangQueue:
    """Holds gang members until the gang is complete, then places gangs atomically, in order."""

    def __init__(self, scheduler: placing.Scheduler) -> None:
        self.scheduler = scheduler
        self.members: OrderedDict[str, list[demands.Demand]] = OrderedDict()
        self.sizes: dict[str, int] = {}

    def submit(self, pod: cluster.Pod) -> list[GangDecision]:
        """Add a gang member; returns the gangs that started as a result (maybe none)."""
        if pod.gang is None or pod.gang_size < 1:
            raise errors.InvalidInputError(f"pod {pod.key}: not a gang member (gang, gang_size)")
        known = self.sizes.setdefault(pod.gang, pod.gang_size)
        if known != pod.gang_size:
            raise errors.InvalidInputError(
                f"pod {pod.key}: gang {pod.gang} size {pod.gang_size} disagrees with {known}"
            )
        self.members.setdefault(pod.gang, []).append(demands.from_pod(pod))
        return self.retry()

    def waiting(self) -> list[str]:
        return list(self.members)

    def retry(self) -> list[GangDecision]:
        """Try every complete waiting gang, oldest first; started gangs leave the queue."""
        started: list[GangDecision] = []
        for gang in list(self.members):
            group = self.members[gang]
            if len(group) < self.sizes[gang]:
                continue
            decision = schedule_gang(self.scheduler, gang, group)
            if decision.placed:
                started.append(decision)
                del self.members[gang]
                del self.sizes[gang]
        return started
