"""The live rightsizing family: what each managed service's pods should request, as
`Recommend` actions (Events on the workload), from the same code `kopilot advise` runs.

Reads, from the snapshot only: the managed services, their pod template's requests, and the
cAdvisor streams of their running pods (`pod/<ns>/<pod>/cpu_cores` and `.../memory_mib`,
docs/signals.md). It builds one `rightsizing.History` per service (one series per pod, summed over
the pod's containers), asks kopilot's strategy (`rightsizing.Kopilot`: backtested CPU level,
memory max + 15 %) and turns every request that exceeds the recommendation by more than
`tolerance` into a `Recommend`, exactly as `kopilot advise` does (`idle.oversized`).

A recommendation is proposed again only after `every_s`, or sooner when the recommended value
moved by more than `change`: Events are for people, not a stream. Too little or bad history
(the strategy's data-quality gate) gives no recommendation, never a made-up number. Nothing here
changes a request: resizing a running workload is a person's decision.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from kopilot.cost import idle, rightsizing
from kopilot.model import actions, cluster, decisions, series

POLICY = "cost/rightsizing"
MIB = 1024.0**2


@dataclass(frozen=True, slots=True, kw_only=True)
class SizingState:
    said: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    """`<service>|<resource>` -> (when, recommended value) of the last proposal."""
    checked: Mapping[str, float] = field(default_factory=dict)
    """Service -> when its history was last judged."""


def history_of(
    svc: cluster.ModelService, pods: list[cluster.Pod], metrics: Mapping[str, series.Series]
) -> rightsizing.History:
    """The usage history of one service's pods, in the units `rightsizing` takes (cores, bytes)."""
    cpu: list[series.Series] = []
    memory: list[series.Series] = []
    for pod in pods:
        prefix = f"pod/{pod.namespace}/{pod.name}"
        if (s := metrics.get(f"{prefix}/cpu_cores")) is not None and len(s):
            cpu.append(s)
        if (s := metrics.get(f"{prefix}/memory_mib")) is not None and len(s):
            memory.append(series.Series.of(s.times, s.values * MIB))
    request = svc.request
    return rightsizing.History(
        subject=f"{svc.key}/pod",
        cpu=tuple(cpu),
        memory=tuple(memory),
        cpu_request=request.cpu_milli / 1000.0 if request.cpu_milli else None,
        memory_request=request.memory_mib * MIB if request.memory_mib else None,
    )


@dataclass(frozen=True, slots=True)
class RightsizingPolicy:
    """Recommend smaller requests for oversized services (module docstring)."""

    every_s: float = 6 * 3600.0
    change: float = 0.1
    tolerance: float = 0.2
    recheck_s: float = 600.0
    """A service's history is judged again only after this long (usage moves slowly)."""
    per_cycle: int = 25
    """At most this many services judged per decision, the longest unchecked first: the
    strategy backtests 16 candidates per resource, so a large cluster is spread over cycles."""
    strategy: rightsizing.Kopilot = field(default_factory=rightsizing.Kopilot)
    policy: str = POLICY

    @property
    def name(self) -> str:
        return self.policy

    def initial_state(self) -> SizingState:
        return SizingState()

    def decide(
        self, snapshot: cluster.ClusterSnapshot, prior: SizingState, now: float
    ) -> decisions.Decision[SizingState]:
        out: list[actions.Action] = []
        said = dict(prior.said)
        checked = dict(prior.checked)
        running: dict[str, list[cluster.Pod]] = {}
        for pod in snapshot.pods:
            if pod.service and pod.phase is cluster.PodPhase.RUNNING:
                running.setdefault(pod.service, []).append(pod)
        due = [
            s
            for s in snapshot.services
            if s.key in running and now - checked.get(s.key, -np.inf) >= self.recheck_s
        ]
        due.sort(key=lambda s: (checked.get(s.key, -np.inf), s.key))
        for svc in due[: self.per_cycle]:
            checked[svc.key] = now
            pods = sorted(running[svc.key], key=lambda p: p.key)
            history = history_of(svc, pods, snapshot.metrics)
            rec = self.strategy.recommend(history)
            found = idle.oversized(
                rec,
                cpu_request=history.cpu_request,
                memory_request=history.memory_request,
                gpus=0.0,
                tolerance=self.tolerance,
            )
            for action in found:
                key = f"{svc.key}|{action.resource}"
                last = said.get(key)
                if last is not None:
                    when, value = last
                    moved = abs(action.recommended - value) > self.change * max(value, 1e-12)
                    if now - when < self.every_s and not moved:
                        continue
                said[key] = (now, action.recommended)
                out.append(
                    dataclasses.replace(
                        action,
                        subject=f"service/{svc.key}",
                        reason=f"{action.reason} (over {len(pods)} pod(s))",
                        policy=self.policy,
                    )
                )
        live = {s.key for s in snapshot.services}
        kept = {k: v for k, v in said.items() if k.split("|", 1)[0] in live}
        state = SizingState(said=kept, checked={k: v for k, v in checked.items() if k in live})
        return decisions.Decision(actions=tuple(out), state=state)
