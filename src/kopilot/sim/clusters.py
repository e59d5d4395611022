"""The cluster twin: GPU pods of the Alibaba openb trace filling the 1,213-node GPU cluster.

A placement policy (a `Placer`) picks a node and GPUs for each arriving pod, as in the FGD study's
protocol (see `fill`). The twin measures how much of the cluster's GPU capacity gets allocated
before pods stop fitting, and how much free capacity is stranded in partly used GPUs: the
fragmentation that good placement avoids.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from kopilot.model import cluster, resources
from kopilot.scheduling import placers, profiles
from kopilot.traces import openb


class Placer(Protocol):
    """A placement policy with its own view of what is allocated where."""

    @property
    def name(self) -> str: ...

    def place(self, pod: cluster.Pod) -> bool:
        """Allocate the pod somewhere and return True, or return False if it fits nowhere now."""
        ...

    def release(self, pod: cluster.Pod) -> None:
        """Free what `place` allocated for this pod."""
        ...

    def gpu_free_milli(self) -> np.ndarray:
        """Free milli-GPU per GPU (a flat array over all GPUs of the cluster)."""
        ...


class KubeDefaultPlacer:
    """What a stock kube-scheduler with the NVIDIA device plugin does.

    Filter: CPU, memory, GPU model (node affinity), and enough free GPUs (whole GPUs must be
    entirely free; a share needs one GPU with that much left, as with HAMi-style sharing).
    Score: NodeResourcesFit LeastAllocated on CPU and memory plus NodeResourcesBalancedAllocation,
    equal weights; ties go to the first node. The device plugin then takes the first GPUs that fit.
    """

    def __init__(self, nodes: Sequence[cluster.Node]) -> None:
        self.nodes = tuple(nodes)
        n = len(nodes)
        width = max((len(nd.gpus) for nd in nodes), default=0)
        self.cpu_cap = np.array([nd.cpu_milli for nd in nodes], dtype=np.float64)
        self.mem_cap = np.array([nd.memory_mib for nd in nodes], dtype=np.float64)
        self.cpu_free = self.cpu_cap.copy()
        self.mem_free = self.mem_cap.copy()
        self.gpu_free = np.full((n, width), -1, dtype=np.int64)
        for i, nd in enumerate(nodes):
            self.gpu_free[i, : len(nd.gpus)] = resources.GPU_MILLI
        self.model = np.array([nd.gpu_model or "" for nd in nodes])
        self._where: dict[str, tuple[int, tuple[int, ...], int]] = {}

    @property
    def name(self) -> str:
        return "kube-default"

    def feasible(self, pod: cluster.Pod) -> np.ndarray:
        req = pod.request
        ok = (self.cpu_free >= req.cpu_milli) & (self.mem_free >= req.memory_mib)
        if pod.gpu_models:
            ok &= np.isin(self.model, list(pod.gpu_models))
        if req.gpus:
            ok &= (self.gpu_free == resources.GPU_MILLI).sum(axis=1) >= req.gpus
        elif req.gpu_milli:
            ok &= (self.gpu_free >= req.gpu_milli).any(axis=1)
        return ok

    def score(self, pod: cluster.Pod, ok: np.ndarray) -> np.ndarray:
        req = pod.request
        cpu_after = (self.cpu_free - req.cpu_milli) / self.cpu_cap
        mem_after = (self.mem_free - req.memory_mib) / self.mem_cap
        least = (cpu_after + mem_after) / 2.0
        balanced = 1.0 - np.abs(cpu_after - mem_after)
        return np.where(ok, least + balanced, -np.inf)

    def choose_gpus(self, node: int, pod: cluster.Pod) -> tuple[tuple[int, ...], int]:
        req = pod.request
        row = self.gpu_free[node]
        if req.gpus:
            idx = np.flatnonzero(row == resources.GPU_MILLI)[: req.gpus]
            return tuple(int(i) for i in idx), resources.GPU_MILLI
        if req.gpu_milli:
            return (int(np.flatnonzero(row >= req.gpu_milli)[0]),), req.gpu_milli
        return (), 0

    def place(self, pod: cluster.Pod) -> bool:
        ok = self.feasible(pod)
        if not ok.any():
            return False
        node = int(np.argmax(self.score(pod, ok)))
        gpu_idx, per_gpu = self.choose_gpus(node, pod)
        self.cpu_free[node] -= pod.request.cpu_milli
        self.mem_free[node] -= pod.request.memory_mib
        for g in gpu_idx:
            self.gpu_free[node, g] -= per_gpu
        self._where[pod.name] = (node, gpu_idx, per_gpu)
        return True

    def release(self, pod: cluster.Pod) -> None:
        node, gpu_idx, per_gpu = self._where.pop(pod.name)
        self.cpu_free[node] += pod.request.cpu_milli
        self.mem_free[node] += pod.request.memory_mib
        for g in gpu_idx:
            self.gpu_free[node, g] += per_gpu

    def gpu_free_milli(self) -> np.ndarray:
        flat = self.gpu_free.ravel()
        return flat[flat >= 0]


PlacerFactory = Callable[[Sequence[cluster.Node], Sequence[openb.TracePod], random.Random], Placer]


def _kube_default(
    nodes: Sequence[cluster.Node], pods: Sequence[openb.TracePod], rng: random.Random
) -> Placer:
    return KubeDefaultPlacer(nodes)


def _profile(name: str) -> PlacerFactory:
    def make(
        nodes: Sequence[cluster.Node], pods: Sequence[openb.TracePod], rng: random.Random
    ) -> Placer:
        # The FGD study gives FGD the trace's pod popularity as its target workload; kopilot's
        # profile gets the same, so the comparison is fair.
        workload = profiles.workload_of(tp.pod for tp in pods)
        return placers.ProfilePlacer(nodes, name, workload=workload, rng=rng)

    return make


PLACERS: dict[str, PlacerFactory] = {
    "kube-default": _kube_default,
    **{name: _profile(name) for name in profiles.NAMES},
}
"""Placement policies by name: the stock kube-scheduler, the FGD study's baselines, FGD, kopilot."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterResult:
    policy: str
    arrived: int
    placed: int
    failed: int
    allocation_at_100_pct: float
    """GPU allocation ratio when the arrived GPU demand reached 100 % of capacity."""
    allocation_at_end_pct: float
    """... and at the end (arrived demand = `until` x capacity)."""
    fragmented_at_end_pct: float
    """Free GPU capacity stranded in partly used GPUs, as % of all GPU capacity, at the end."""
    samples: dict[str, np.ndarray]
    """Per arrival: arrived demand % of capacity, allocated %, failed pods so far."""


def fill(
    nodes: Sequence[cluster.Node],
    pods: Sequence[openb.TracePod],
    placer: Placer,
    rng: random.Random,
    *,
    until: float = 1.3,
    progress: Callable[[str, float], None] | None = None,
) -> ClusterResult:
    """Fill the cluster the way the FGD study does (Weng et al., USENIX ATC '23).

    Pods are drawn from the trace with replacement (seeded) and arrive one by one, with no
    departures, until the GPU demand that arrived reaches `until` x the cluster's GPU capacity.
    A pod that fits nowhere fails and the next one arrives.
    """
    total = sum(len(n.gpus) for n in nodes) * resources.GPU_MILLI
    pool = [tp.pod for tp in pods]
    if not any(_milli(p) for p in pool):
        raise ValueError(
            "cluster twin: no pod in the list asks for a GPU, so the cluster never fills"
        )
    arrived_milli = allocated = placed = failed = 0
    at_100: float | None = None
    rows: list[tuple[float, float, float]] = []
    seq = 0
    while arrived_milli < until * total:
        template = pool[rng.randrange(len(pool))]
        pod = dataclasses.replace(template, name=f"{template.name}-{seq}")
        seq += 1
        need = _milli(pod)
        arrived_milli += need
        if placer.place(pod):
            placed += 1
            allocated += need
        else:
            failed += 1
        if at_100 is None and arrived_milli >= total:
            at_100 = 100.0 * allocated / total
        if need:
            rows.append((100.0 * arrived_milli / total, 100.0 * allocated / total, float(failed)))
        if progress is not None and seq % 1000 == 0:
            progress(f"cluster: {placer.name}", min(1.0, arrived_milli / (until * total)))
    if progress is not None:
        progress(f"cluster: {placer.name}", 1.0)
    free = placer.gpu_free_milli()
    stranded = float(free[(free > 0) & (free < resources.GPU_MILLI)].sum())
    arr = np.array(rows) if rows else np.zeros((0, 3))
    return ClusterResult(
        policy=placer.name,
        arrived=seq,
        placed=placed,
        failed=failed,
        allocation_at_100_pct=at_100 if at_100 is not None else 100.0 * allocated / total,
        allocation_at_end_pct=100.0 * allocated / total,
        fragmented_at_end_pct=100.0 * stranded / total,
        samples={"arrived_pct": arr[:, 0], "allocation_pct": arr[:, 1], "failed": arr[:, 2]},
    )


def _milli(pod: cluster.Pod) -> int:
    return pod.request.gpus * resources.GPU_MILLI + pod.request.gpu_milli
