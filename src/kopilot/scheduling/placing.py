"""Place pods one at a time: the entry point of `kopilot.scheduling`.

    from kopilot.scheduling import demands, placing, profiles, state

    cluster = state.from_snapshot(snapshot.nodes, snapshot.pods)   # or state.ClusterState(nodes)
    profile = profiles.named("kopilot", workload=profiles.workload_of(pending_pods))
    scheduler = placing.Scheduler(cluster, profile, rng=kits.randomness.rng(seed, "placement"))
    decision = scheduler.schedule(pod)        # a cluster.Pod or a demands.Demand
    if decision.placed:                       # framework.Placement: node, allocation, verdicts
        bind = placing.to_bind(decision)      # an actions.Bind with reason + evidence
    else:                                     # framework.Unschedulable: status + filter counts
        print(decision.reason())              # "0/1213 nodes are available: 812 Insufficient cpu"

`decide()` is the pure part (it reads the state and changes nothing); `Scheduler.schedule()` also
commits a placement to the state, and `Scheduler.release(pod_key)` gives a pod's resources back.
"""

from __future__ import annotations

import random

import numpy as np

from kopilot.model import actions, cluster
from kopilot.scheduling import demands, framework, profiles, state


def decide(
    cluster_state: state.ClusterState,
    demand: demands.Demand,
    profile: profiles.Profile,
    rng: random.Random,
    *,
    explain: bool = False,
) -> framework.Decision:
    """Where `demand` should go under `profile`; the state is not changed."""
    n = len(cluster_state)
    alive = np.ones(n, dtype=np.bool_)
    verdicts: list[framework.FilterVerdict] = []
    table = framework.NodeTable(names=tuple(cluster_state.names)) if explain else None
    resolvable = False
    for plugin in profile.filters:
        result = plugin.filter(cluster_state, demand)
        rejected = alive & ~result.passed
        count = int(rejected.sum())
        if count and not result.unresolvable:
            resolvable = True
        verdicts.append(
            framework.FilterVerdict(
                plugin=plugin.name,
                rejected=count,
                reason=result.reason,
                unresolvable=result.unresolvable,
            )
        )
        if table is not None:
            table.filters[plugin.name] = result.passed
            table.filter_reasons[plugin.name] = result.reason
        alive &= result.passed
    feasible = int(alive.sum())
    if feasible == 0:
        code = (
            framework.Code.UNSCHEDULABLE
            if resolvable
            else framework.Code.UNSCHEDULABLE_AND_UNRESOLVABLE
        )
        reasons = tuple(f"{v.rejected} {v.reason}" for v in verdicts if v.rejected)
        return framework.Unschedulable(
            pod=demand.pod,
            status=framework.Status(code=code, plugin=profile.name, reasons=reasons),
            profile=profile.name,
            nodes=n,
            filters=tuple(verdicts),
            table=table,
        )
    total = np.zeros(n, dtype=np.float64)
    scored: list[tuple[str, float, framework.FloatArray, framework.FloatArray]] = []
    for scorer, weight in profile.scores:
        raw = scorer.score(cluster_state, demand, alive, rng)
        norm = framework.normalise(raw, alive)
        total += weight * norm
        scored.append((scorer.name, weight, raw, norm))
        if table is not None:
            table.scores[scorer.name] = norm
            table.raw[scorer.name] = raw
            table.weights[scorer.name] = weight
    total = np.where(alive, total, -np.inf)
    best = float(total.max())
    ties = np.flatnonzero(total >= best - 1e-9)
    node = int(ties[rng.randrange(ties.size)]) if ties.size > 1 else int(ties[0])
    allocation = profile.picker.pick(cluster_state, demand, node, rng)
    if table is not None:
        table = framework.NodeTable(
            names=table.names,
            filters=table.filters,
            filter_reasons=table.filter_reasons,
            scores=table.scores,
            raw=table.raw,
            weights=table.weights,
            total=np.where(alive, total, np.nan),
        )
    return framework.Placement(
        pod=demand.pod,
        node=cluster_state.names[node],
        allocation=allocation,
        profile=profile.name,
        feasible=feasible,
        nodes=n,
        filters=tuple(verdicts),
        scores=tuple(
            framework.ScoreVerdict(
                plugin=name,
                weight=weight,
                normalised=float(norm[node]),
                raw=float(raw[node]),
                best_raw=float(raw[alive].max()),
            )
            for name, weight, raw, norm in scored
        ),
        picker=profile.picker.name,
        table=table,
    )


def to_bind(placement: framework.Placement) -> actions.Bind:
    """The `Bind` action of a placement, with its reason and evidence."""
    a = placement.allocation
    evidence: dict[str, float | int | str] = {
        "feasible_nodes": placement.feasible,
        "nodes": placement.nodes,
    }
    for s in placement.scores:
        evidence[f"score.{s.plugin}"] = round(s.normalised, 2)
    if a.mig_profile:
        evidence["mig_profile"] = a.mig_profile
        evidence["mig_gpu"] = a.mig_gpu
    if a.milli_per_gpu:
        evidence["gpu_milli_per_gpu"] = a.milli_per_gpu
    gpu_indices = a.gpu_indices or ((a.mig_gpu,) if a.mig_profile else ())
    return actions.Bind(
        pod=placement.pod,
        node=placement.node,
        gpu_indices=gpu_indices,
        reason=placement.reason(),
        evidence=evidence,
        policy=f"scheduling/{placement.profile}",
    )


class Scheduler:
    """A profile bound to one mutable cluster state and one seeded random stream."""

    def __init__(
        self, cluster_state: state.ClusterState, profile: profiles.Profile, rng: random.Random
    ) -> None:
        self.state = cluster_state
        self.profile = profile
        self.rng = rng

    def schedule(
        self, pod: cluster.Pod | demands.Demand, *, explain: bool = False
    ) -> framework.Decision:
        """Decide where the pod goes and, when it fits, take its resources in the state."""
        demand = pod if isinstance(pod, demands.Demand) else demands.from_pod(pod)
        decision = decide(self.state, demand, self.profile, self.rng, explain=explain)
        if isinstance(decision, framework.Placement):
            self.state.assign(decision.allocation)
        return decision

    def release(self, pod_key: str) -> state.Allocation | None:
        """Give back what a pod holds (it finished, or a gang rolled back)."""
        return self.state.release(pod_key)
