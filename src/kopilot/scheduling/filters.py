"""Filter plugins: which nodes can hold a pod at all. Each works on every node at once."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kopilot.model import gpus, resources
from kopilot.scheduling import demands, framework, state


@dataclass(frozen=True, slots=True)
class NodeSchedulable:
    """Cordoned or not-ready nodes take no pods."""

    name: str = "NodeSchedulable"

    def filter(self, cluster: state.ClusterState, demand: demands.Demand) -> framework.FilterResult:
        return framework.FilterResult(
            passed=cluster.schedulable.copy(),
            reason="node(s) were unschedulable",
            unresolvable=True,
        )


@dataclass(frozen=True, slots=True)
class GpuModel:
    """The pod's allowed GPU models (`gpu_spec`, e.g. `V100M16|V100M32`); no GPU pods pass all."""

    name: str = "GpuModel"

    def filter(self, cluster: state.ClusterState, demand: demands.Demand) -> framework.FilterResult:
        if demand.kind == "none":
            passed = np.ones(len(cluster), dtype=np.bool_)
        elif demand.kind == "mig":
            passed = np.zeros(len(cluster), dtype=np.bool_)
            for (n, _), layout in cluster.mig_layouts.items():
                model = gpus.model_named(layout.model)
                if any(p.name == demand.mig_profile for p in model.mig_profiles):
                    passed[n] = True
        else:
            passed = cluster.models_mask(demand.models) & (cluster.model_id >= 0)
        allowed = "|".join(sorted(demand.models)) or "any"
        return framework.FilterResult(
            passed=passed,
            reason=f"node(s) didn't have the GPU model ({allowed}) or MIG profile asked for",
            unresolvable=True,
        )


@dataclass(frozen=True, slots=True)
class CpuFit:
    name: str = "CpuFit"

    def filter(self, cluster: state.ClusterState, demand: demands.Demand) -> framework.FilterResult:
        return framework.FilterResult(
            passed=cluster.cpu_free >= demand.cpu_milli, reason="Insufficient cpu"
        )


@dataclass(frozen=True, slots=True)
class MemoryFit:
    name: str = "MemoryFit"

    def filter(self, cluster: state.ClusterState, demand: demands.Demand) -> framework.FilterResult:
        return framework.FilterResult(
            passed=cluster.mem_free >= demand.memory_mib, reason="Insufficient memory"
        )


@dataclass(frozen=True, slots=True)
class GpuFit:
    """Whole GPUs: enough idle GPUs. A share: one GPU with that much room. Time-sliced nodes:
    `nvidia.com/gpu: 1` is one replica; more than one fails, as with the device plugin's
    `failRequestsGreaterThanOne`."""

    name: str = "GpuFit"

    def filter(self, cluster: state.ClusterState, demand: demands.Demand) -> framework.FilterResult:
        n = len(cluster)
        if demand.kind in ("none", "mig"):
            return framework.FilterResult(passed=np.ones(n, dtype=np.bool_), reason="")
        share = cluster.share_milli(demand)
        room = cluster.gpu_real & (cluster.gpu_free >= np.maximum(share, 1)[:, None])
        passed = (share > 0) & room.any(axis=1)
        if demand.kind == "whole":
            idle = (cluster.gpu_real & (cluster.gpu_free >= resources.GPU_MILLI)).sum(axis=1)
            passed |= (share == 0) & ~cluster.time_sliced() & (idle >= demand.gpus)
            reason = f"Insufficient {resources.RESOURCE_GPU}"
        else:
            reason = f"no GPU with {demand.gpu_milli}m free"
        return framework.FilterResult(passed=passed, reason=reason)


@dataclass(frozen=True, slots=True)
class MigFit:
    """MIG slices: enough free slices of the profile on one GPU of the node."""

    name: str = "MigFit"

    def filter(self, cluster: state.ClusterState, demand: demands.Demand) -> framework.FilterResult:
        n = len(cluster)
        if demand.kind != "mig" or demand.mig_profile is None:
            return framework.FilterResult(passed=np.ones(n, dtype=np.bool_), reason="")
        passed = np.zeros(n, dtype=np.bool_)
        counts = cluster.mig_free.get(demand.mig_profile)
        if counts is not None:
            for node in np.flatnonzero(counts >= demand.mig_count):
                gpu, _ = state.first_mig_slices(cluster, int(node), demand)
                passed[node] = gpu >= 0
        return framework.FilterResult(
            passed=passed,
            reason=f"Insufficient {resources.MIG_RESOURCE_PREFIX}{demand.mig_profile}",
        )


def defaults() -> tuple[framework.Filter, ...]:
    """The filters every profile runs, in order (the first to reject a node is the one named)."""
    return (NodeSchedulable(), GpuModel(), CpuFit(), MemoryFit(), GpuFit(), MigFit())
