"""The live MIG family: repartition MIG nodes, the way the NVIDIA GPU operator takes it.

Reads, from the snapshot only: the nodes whose `nvidia.com/mig.config` label says the GPU
operator's MIG manager runs there (the operator sets it, `all-disabled` by default), their GPU
model (`nvidia.com/gpu.product`) and physical GPU count (`nvidia.com/gpu.count`), and the MIG
slices pending pods ask for (`nvidia.com/mig-<profile>` requests).

Proposes: per node, at most one `Repartition` whose layout is a *named* config of the operator's
default ConfigMap (`migconfigs`), chosen by the MIG planner (`migplanning.plan`) among those
layouts only, so that what is proposed can be carried out by relabelling the node. A named config
applies to every GPU of the node (`devices: all`), so the action's evidence says which config,
on how many GPUs, and how many GPU pods must move first (the live World evicts them, respecting
PodDisruptionBudgets, before it relabels the node).

Leaves alone, and says so once per node and label value (an `Alert` on the node): a node whose
config is not a named config kopilot knows (a custom ConfigMap), whose `mig.config.state` is
`failed`, or whose GPU count label is not a number. A node still `pending` or `rebooting` is
skipped silently: the MIG manager is at work.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from kopilot.model import actions, cluster, decisions, errors, gpus
from kopilot.scheduling import migconfigs, migplanning, state

POLICY = "scheduling/mig-repartition"
BUSY_STATES = frozenset({"pending", "rebooting"})
MAX_GPUS = 64
"""More GPUs than this on one node is a wrong label, not a node to plan."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RepartitionState:
    told: frozenset[str] = frozenset()
    """Problems already reported (node and label value), so each is said once."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _MigNode:
    node: cluster.Node
    """The node with its GPUs as the labels say (a layout on each when MIG is on)."""
    config: str
    model: str
    gpu_pods: int


def _uses_gpu(pod: cluster.Pod) -> bool:
    r = pod.request
    return bool(r.gpus or r.gpu_milli or any(r.mig.values()))


def _live(pod: cluster.Pod) -> bool:
    return pod.phase in (cluster.PodPhase.PENDING, cluster.PodPhase.RUNNING)


def _read(node: cluster.Node, pods_on: Mapping[str, int]) -> _MigNode | str | None:
    """The node as the MIG family sees it; a problem to report (str); None to skip quietly."""
    config = node.labels.get(migconfigs.LABEL_CONFIG)
    if config is None:
        return None
    progress = node.labels.get(migconfigs.LABEL_STATE, "success")
    if progress in BUSY_STATES:
        return None
    if progress == "failed":
        return (
            f"the MIG manager failed to apply {migconfigs.LABEL_CONFIG}={config} "
            f"({migconfigs.LABEL_STATE}=failed); kopilot leaves this node's MIG alone until "
            "a person fixes it"
        )
    model = node.labels.get("nvidia.com/gpu.product", node.gpu_model or "")
    if model not in migconfigs.NAMED:
        return None  # not a MIG-capable model kopilot knows: nothing to plan
    raw_count = node.labels.get(migconfigs.LABEL_GPU_COUNT)
    if raw_count is None:
        count = len(node.gpus)
    else:
        try:
            count = int(raw_count)
        except ValueError:
            count = -1
        if not 0 <= count <= MAX_GPUS:
            return (
                f"label {migconfigs.LABEL_GPU_COUNT}={raw_count!r} is not a GPU count "
                f"(0..{MAX_GPUS})"
            )
    if count <= 0:
        return None
    if config == migconfigs.DISABLED:
        used = {g.index: g.used_milli for g in node.gpus}
        gpus_ = tuple(
            cluster.Gpu(index=i, model=model, used_milli=used.get(i, 0)) for i in range(count)
        )
    else:
        layout = migconfigs.layout_of(model, config)
        if layout is None:
            return (
                f"{migconfigs.LABEL_CONFIG}={config} is not a config of the GPU operator's "
                f"default ConfigMap for {model} (a custom config?); kopilot cannot tell its "
                "layout and leaves this node's MIG alone"
            )
        gpus_ = tuple(cluster.Gpu(index=i, model=model, mig=layout) for i in range(count))
    view = cluster.Node(
        name=node.name,
        cpu_milli=node.cpu_milli,
        memory_mib=node.memory_mib,
        gpus=gpus_,
        labels=node.labels,
        unschedulable=node.unschedulable,
        ready=node.ready,
    )
    return _MigNode(node=view, config=config, model=model, gpu_pods=pods_on.get(node.name, 0))


def pending_demand(pods: tuple[cluster.Pod, ...]) -> Counter[str]:
    """MIG slices (profile -> count) that pending, unbound pods ask for."""
    want: Counter[str] = Counter()
    for pod in pods:
        if pod.node is None and pod.phase is cluster.PodPhase.PENDING:
            for profile, n in pod.request.mig.items():
                if n > 0:
                    want[profile] += n
    return want


@dataclass(frozen=True, slots=True)
class RepartitionPolicy:
    """Propose named MIG configs for MIG nodes so that pending MIG pods fit (module docstring)."""

    policy: str = POLICY
    told_max: int = field(default=1000)

    @property
    def name(self) -> str:
        return self.policy

    def initial_state(self) -> RepartitionState:
        return RepartitionState()

    def decide(
        self, snapshot: cluster.ClusterSnapshot, prior: RepartitionState, now: float
    ) -> decisions.Decision[RepartitionState]:
        out: list[actions.Action] = []
        told = set(prior.told)
        pods_on: Counter[str] = Counter(
            p.node for p in snapshot.pods if p.node and _live(p) and _uses_gpu(p)
        )
        views: list[_MigNode] = []
        for node in sorted(snapshot.nodes, key=lambda n: n.name):
            seen = _read(node, pods_on)
            if isinstance(seen, str):
                key = f"{node.name}|{node.labels.get(migconfigs.LABEL_CONFIG)}|{seen}"
                if key not in told:
                    told.add(key)
                    out.append(self._alert(node.name, seen))
            elif seen is not None:
                views.append(seen)
        want = pending_demand(snapshot.pods)
        if views and want:
            out.extend(self._plan(views, snapshot.pods, want))
        kept = frozenset(sorted(told)[-self.told_max :])
        return decisions.Decision(actions=tuple(out), state=RepartitionState(told=kept))

    def _alert(self, node: str, problem: str) -> actions.Alert:
        return actions.Alert(
            subject=f"node/{node}",
            severity=actions.Severity.WARNING,
            summary="MIG left alone",
            reason=problem,
            policy=self.policy,
        )

    def _plan(
        self, views: list[_MigNode], pods: tuple[cluster.Pod, ...], want: Counter[str]
    ) -> list[actions.Repartition]:
        names = {v.node.name for v in views}
        bound = [p for p in pods if p.node in names and _live(p)]
        try:
            cl = state.from_snapshot([v.node for v in views], bound)
        except errors.InvalidInputError:
            # The pods on these nodes do not fit the layouts the labels claim (a stale label, or
            # pods the device plugin placed otherwise): no confident plan this cycle.
            return []
        by_name = {v.node.name: v for v in views}
        out: list[actions.Repartition] = []
        left = Counter(want)
        for model in sorted({v.model for v in views}):
            gpu_model = gpus.model_named(model)
            mine = Counter({p: c for p, c in left.items() if p in _profiles(gpu_model) and c > 0})
            if not mine:
                continue
            named = migconfigs.layouts(model)
            plan = migplanning.plan(cl, mine, model=model, options=list(named.values()))
            wanted: dict[str, Counter[gpus.MigLayout]] = {}
            for a in plan.actions:
                wanted.setdefault(a.node, Counter())[a.layout] += 1
            for node_name in sorted(wanted):
                view = by_name[node_name]
                layout = max(wanted[node_name].items(), key=lambda kv: (kv[1], -len(kv[0].slices)))[
                    0
                ]
                config = migconfigs.name_for(layout)
                if config is None or config == view.config:
                    continue
                count = len(view.node.gpus)
                slices = Counter({p: c * count for p, c in layout.counts().items()})
                serves = {p: min(slices[p], left[p]) for p in slices if left[p] > 0}
                for p, n in serves.items():
                    left[p] -= n
                moving = view.gpu_pods
                out.append(
                    actions.Repartition(
                        node=node_name,
                        gpu_index=0,
                        layout=layout,
                        reason=(
                            f"pending pods ask for {_mix(want)}; {migconfigs.LABEL_CONFIG} "
                            f"{view.config} -> {config} ({layout.describe()} on each of "
                            f"{count} GPUs) serves {_mix(serves)}"
                            + (f"; {moving} GPU pod(s) must move first" if moving else "")
                        ),
                        evidence={
                            "mig_config": config,
                            "was": view.config,
                            "gpus": count,
                            "pods_to_move": moving,
                            **{f"serves_{p}": n for p, n in sorted(serves.items())},
                        },
                        policy=self.policy,
                    )
                )
        return out


def _profiles(model: gpus.GpuModel) -> set[str]:
    return {p.name for p in model.mig_profiles}


def _mix(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} x {p}" for p, n in sorted(counts.items()) if n > 0) or "nothing"
