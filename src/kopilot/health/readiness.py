"""A pure remediation policy for the live cluster: cordon nodes that stay NotReady.

A node whose `Ready` condition is not `True` for `grace_s` (seen in consecutive snapshots) is
proposed for cordoning, so no new pod lands on it; once it has been Ready again for `grace_s`,
the nodes this policy cordoned are proposed for uncordoning. The governor decides how many may be
cordoned at once (blast radius) and how often (cool-downs): this policy proposes them all, sorted
by name so that its proposals are deterministic.

Only the live adapter (`kopilot.kube`) fills in node readiness today, so `kopilot run` is where it
runs; it is pure (`decide(snapshot, state, now)`), like every policy, and reads nothing but the
snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kopilot.model import actions, cluster, decisions

POLICY = "node-readiness"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadinessState:
    not_ready_since: dict[str, float] = field(default_factory=dict)
    ready_since: dict[str, float] = field(default_factory=dict)
    cordoned: frozenset[str] = frozenset()
    """Nodes this policy proposed to cordon (uncordoned by it once healthy again)."""


@dataclass(frozen=True, slots=True)
class ReadinessPolicy:
    grace_s: float = 60.0
    uncordon: bool = True

    @property
    def name(self) -> str:
        return POLICY

    def initial_state(self) -> ReadinessState:
        return ReadinessState()

    def decide(
        self, snapshot: cluster.ClusterSnapshot, state: ReadinessState, now: float
    ) -> decisions.Decision[ReadinessState]:
        out: list[actions.Action] = []
        not_ready: dict[str, float] = {}
        ready: dict[str, float] = {}
        cordoned = set(state.cordoned)
        for node in sorted(snapshot.nodes, key=lambda n: n.name):
            if not node.ready:
                since = state.not_ready_since.get(node.name, now)
                not_ready[node.name] = since
                if not node.unschedulable and now - since >= self.grace_s:
                    out.append(
                        actions.Cordon(
                            node=node.name,
                            reason=f"node NotReady for {now - since:.0f} s (grace {self.grace_s:.0f} s)",
                            evidence={"not_ready_s": round(now - since, 1)},
                            policy=POLICY,
                        )
                    )
                    cordoned.add(node.name)
                continue
            since = state.ready_since.get(node.name, now)
            ready[node.name] = since
            if node.name in state.cordoned and not node.unschedulable:
                cordoned.discard(node.name)  # a person uncordoned it: hands off
            elif (
                self.uncordon
                and node.name in state.cordoned
                and node.unschedulable
                and now - since >= self.grace_s
            ):
                out.append(
                    actions.Cordon(
                        node=node.name,
                        uncordon=True,
                        reason=f"node Ready again for {now - since:.0f} s; kopilot had cordoned it",
                        evidence={"ready_s": round(now - since, 1)},
                        policy=POLICY,
                    )
                )
                cordoned.discard(node.name)
        known = {n.name for n in snapshot.nodes}
        new_state = ReadinessState(
            not_ready_since=not_ready,
            ready_since=ready,
            cordoned=frozenset(cordoned & known),
        )
        return decisions.Decision(actions=tuple(out), state=new_state)
