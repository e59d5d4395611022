"""MIG layout planner: given the demand mix, recommend each MIG-capable GPU's geometry.

Supply first: slices that are in use stay, and a GPU with any slice in use keeps its layout (its
free slices count toward the demand). Every idle MIG-capable GPU may be repartitioned: in turn,
each takes the maximal valid layout (from all layouts the hardware can hold, enumerated by
`layouts`) that serves the most still-unserved demand, counted in compute slices; a GPU whose
current layout serves as much keeps it (no needless disruption). The result is a list of
`Repartition` actions, each with its reason and evidence.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

from kopilot.model import actions, gpus
from kopilot.scheduling import state


@cache
def layouts(model_name: str) -> tuple[gpus.MigLayout, ...]:
    """Every maximal valid layout of a GPU model (no further slice could be added)."""
    model = gpus.model_named(model_name)
    found: dict[tuple[tuple[str, int], ...], gpus.MigLayout] = {}

    def extend(slices: list[gpus.MigSlice], used: int, compute: int) -> None:
        grown = False
        for profile in model.mig_profiles:
            for start in profile.starts:
                mask = ((1 << profile.memory_slices) - 1) << start
                if start + profile.memory_slices > gpus.MEMORY_SLICES or used & mask:
                    continue
                if compute + profile.compute > gpus.COMPUTE_SLICES:
                    continue
                if slices and (start, profile.name) < (slices[-1].start, slices[-1].profile):
                    grown = True  # reachable in canonical order from another branch
                    continue
                grown = True
                extend(
                    [*slices, gpus.MigSlice(profile=profile.name, start=start)],
                    used | mask,
                    compute + profile.compute,
                )
        if not grown and slices:
            layout = gpus.validate_layout(model, slices)
            key = tuple((s.profile, s.start) for s in layout.slices)
            found[key] = layout

    extend([], 0, 0)
    return tuple(found[k] for k in sorted(found))


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    actions: tuple[actions.Repartition, ...]
    served: Mapping[str, int]
    unserved: Mapping[str, int]


def _value(counts: Mapping[str, int], want: Counter[str], model: gpus.GpuModel) -> int:
    return sum(min(c, want[p]) * model.profile(p).compute for p, c in counts.items())


def plan(
    cluster: state.ClusterState,
    demand: Mapping[str, int],
    *,
    model: str,
    options: Sequence[gpus.MigLayout] | None = None,
) -> Plan:
    """Layouts for the `model` GPUs of the cluster that serve `demand` (profile -> slice count),
    chosen among `options` (default: every maximal layout the hardware can hold; the live loop
    passes the layouts the GPU operator has named configs for, `migconfigs.layouts`)."""
    gpu_model = gpus.model_named(model)
    want: Counter[str] = Counter({p: c for p, c in demand.items() if c > 0})
    for p in want:
        gpu_model.profile(p)  # raises InvalidLayoutError for a profile this model lacks
    candidates: list[tuple[int, int, gpus.MigLayout | None]] = []
    for (node, g), layout in sorted(cluster.mig_layouts.items()):
        if layout.model != gpu_model.name:
            continue
        taken = cluster.mig_taken[(node, g)]
        if any(taken):
            for s, t in zip(layout.slices, taken, strict=True):
                if not t and want[s.profile] > 0:
                    want[s.profile] -= 1
        else:
            candidates.append((node, g, layout))
    for node in range(len(cluster)):
        if cluster.model_id[node] < 0 or cluster.models[cluster.model_id[node]] != gpu_model.name:
            continue
        for g in range(int(cluster.gpu_count[node])):
            if (node, g) not in cluster.mig_layouts and cluster.gpu_free[node, g] >= 1000:
                candidates.append((node, g, None))
    if options is None:
        options = layouts(gpu_model.name)
    if not options:
        return Plan(actions=(), served={}, unserved={p: c for p, c in want.items() if c > 0})
    out: list[actions.Repartition] = []
    served: Counter[str] = Counter()
    for node, g, current in candidates:
        if sum(want.values()) <= 0:
            break
        best = max(options, key=lambda lay: (_value(lay.counts(), want, gpu_model), lay == current))
        gain = _value(best.counts(), want, gpu_model)
        if gain <= 0:
            continue
        if current is not None and _value(current.counts(), want, gpu_model) >= gain:
            best = current
        for p, c in best.counts().items():
            use = min(c, want[p])
            if use > 0:
                want[p] -= use
                served[p] += use
        if best != current:
            out.append(
                actions.Repartition(
                    node=cluster.names[node],
                    gpu_index=g,
                    layout=best,
                    reason=(
                        f"MIG demand mix: {best.describe()} serves "
                        f"{_value(best.counts(), want + Counter(best.counts()), gpu_model)} "
                        f"compute slices of pending demand"
                        + (f" (was {current.describe()})" if current else " (was a plain GPU)")
                    ),
                    evidence={p: int(c) for p, c in sorted(demand.items())},
                    policy="scheduling/mig-planner",
                )
            )
    return Plan(
        actions=tuple(out),
        served=dict(served),
        unserved={p: c for p, c in want.items() if c > 0},
    )
