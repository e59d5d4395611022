"""The mutable cluster state that placement reads and changes, held in numpy arrays by node.

One row per node: CPU and memory (capacity and used), the GPU model, and a `gpu_free` matrix
(node x GPU slot, in milli-GPU; 1000 = an idle GPU). A GPU slot beyond a node's GPU count, and a
GPU that is MIG-partitioned, has `gpu_free` 0 and `gpu_real` False: plain-GPU arithmetic never
sees it. MIG GPUs keep their layout and which slices are taken; `mig_free[profile]` counts the free
slices of each profile per node, so a filter over 1,000 nodes is one array comparison.

Time-slicing as in the NVIDIA k8s-device-plugin (`sharing.timeSlicing.resources[].replicas`): a
node whose GPUs are advertised `replicas` times hands out 1/replicas of a GPU for each
`nvidia.com/gpu: 1`; `slot_milli` is that share (1000 on a node without time-slicing).

Every change bumps the node's `version`, so a plugin that caches per-node figures knows which rows
to recompute. `allocations` remembers what each pod holds so it can be released (gang rollback,
departures, the extender forgetting a pod).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from kopilot.model import cluster, errors, gpus, resources
from kopilot.scheduling import demands

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

LABEL_REPLICAS = "nvidia.com/gpu.replicas"
"""Node label carrying the time-slicing replica count (set by GPU feature discovery)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Allocation:
    """What one pod holds on one node."""

    pod: str
    node: int
    gpu_indices: tuple[int, ...] = ()
    milli_per_gpu: int = 0
    cpu_milli: int = 0
    memory_mib: int = 0
    mig_gpu: int = -1
    mig_slices: tuple[int, ...] = ()
    """Indexes into the MIG GPU's layout slices."""
    mig_profile: str | None = None


class ClusterState:
    """Nodes and what is allocated on them. Mutable: `assign` and `release` change it."""

    def __init__(self, nodes: Iterable[cluster.Node]) -> None:
        node_list = tuple(nodes)
        if not node_list:
            raise errors.InvalidInputError("cluster state: no nodes given")
        self.names: list[str] = [n.name for n in node_list]
        self.index: dict[str, int] = {}
        for i, name in enumerate(self.names):
            if name in self.index:
                raise errors.InvalidInputError(f"cluster state: node {name!r} appears twice")
            self.index[name] = i
        n = len(node_list)
        width = max(1, *(len(node.gpus) for node in node_list))
        self.cpu_cap: IntArray = np.array([x.cpu_milli for x in node_list], dtype=np.int64)
        self.mem_cap: IntArray = np.array([x.memory_mib for x in node_list], dtype=np.int64)
        self.cpu_used: IntArray = np.zeros(n, dtype=np.int64)
        self.mem_used: IntArray = np.zeros(n, dtype=np.int64)
        self.gpu_count: IntArray = np.array([len(x.gpus) for x in node_list], dtype=np.int64)
        self.gpu_free: IntArray = np.zeros((n, width), dtype=np.int64)
        self.gpu_real: BoolArray = np.zeros((n, width), dtype=np.bool_)
        self.schedulable: BoolArray = np.array(
            [x.ready and not x.unschedulable for x in node_list], dtype=np.bool_
        )
        self.models: list[str] = sorted({g.model for x in node_list for g in x.gpus})
        self.model_index = {m: i for i, m in enumerate(self.models)}
        self.model_id: IntArray = np.array(
            [self.model_index[x.gpu_model] if x.gpu_model else -1 for x in node_list],
            dtype=np.int64,
        )
        self.slot_milli: IntArray = np.full(n, resources.GPU_MILLI, dtype=np.int64)
        self.version: IntArray = np.zeros(n, dtype=np.int64)
        self.mig_layouts: dict[tuple[int, int], gpus.MigLayout] = {}
        self.mig_taken: dict[tuple[int, int], list[bool]] = {}
        self.mig_free: dict[str, IntArray] = {}
        self.allocations: dict[str, Allocation] = {}
        self.pods_by_milli: dict[int, IntArray] = {}
        """Per-GPU milli of GPU pods -> how many such pods each node runs (GPU clustering)."""
        for i, node in enumerate(node_list):
            replicas = _replicas(node)
            if replicas > 1:
                self.slot_milli[i] = resources.GPU_MILLI // replicas
            for gpu in node.gpus:
                if gpu.index >= width or gpu.index < 0:
                    raise errors.InvalidInputError(
                        f"node {node.name}: GPU index {gpu.index} out of range"
                    )
                if gpu.mig is not None:
                    self._set_layout(i, gpu.index, gpu.mig)
                elif gpu.healthy:
                    self.gpu_real[i, gpu.index] = True
                    self.gpu_free[i, gpu.index] = resources.GPU_MILLI - gpu.used_milli
        self.gpu_cap_milli = int(self.gpu_count.sum()) * resources.GPU_MILLI

    # ---- reading -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.names)

    @property
    def cpu_free(self) -> IntArray:
        return self.cpu_cap - self.cpu_used

    @property
    def mem_free(self) -> IntArray:
        return self.mem_cap - self.mem_used

    @property
    def gpu_used_milli(self) -> int:
        """GPU capacity allocated to pods (whole, shared and MIG slices by compute share)."""
        return sum(a.milli_per_gpu * len(a.gpu_indices) for a in self.allocations.values()) + sum(
            self._mig_milli(a) for a in self.allocations.values() if a.mig_profile
        )

    def allocation_ratio(self) -> float:
        """Allocated GPU milli over total GPU capacity (the FGD study's "GPU allocation ratio")."""
        return self.gpu_used_milli / self.gpu_cap_milli if self.gpu_cap_milli else 0.0

    def models_mask(self, models: frozenset[str]) -> BoolArray:
        """Nodes whose GPU model is allowed (all nodes when `models` is empty)."""
        if not models:
            return np.ones(len(self), dtype=np.bool_)
        ids = [self.model_index[m] for m in models if m in self.model_index]
        return np.isin(self.model_id, np.array(ids, dtype=np.int64))

    def time_sliced(self) -> BoolArray:
        return self.slot_milli < resources.GPU_MILLI

    def share_milli(self, demand: demands.Demand) -> IntArray:
        """Per node, the milli one GPU must give the pod when it takes a share (0 = not a share).

        A GPU share is a share everywhere; one whole GPU on a time-sliced node is one replica.
        """
        if demand.kind == "share":
            return np.full(len(self), demand.gpu_milli, dtype=np.int64)
        if demand.kind == "whole" and demand.gpus == 1:
            return np.where(self.time_sliced(), self.slot_milli, 0)
        return np.zeros(len(self), dtype=np.int64)

    def mig_layout(self, node: int, gpu: int) -> gpus.MigLayout | None:
        return self.mig_layouts.get((node, gpu))

    def mig_gpus(self) -> list[tuple[int, int]]:
        return sorted(self.mig_layouts)

    # ---- changing ------------------------------------------------------------------------

    def assign(self, allocation: Allocation) -> None:
        """Record a pod's allocation; raise if it does not fit (a bug in the caller)."""
        a = allocation
        if a.pod in self.allocations:
            raise errors.InvalidInputError(f"pod {a.pod} is already allocated")
        n = a.node
        if self.cpu_used[n] + a.cpu_milli > self.cpu_cap[n]:
            raise errors.InvalidInputError(f"pod {a.pod}: CPU over capacity on {self.names[n]}")
        if self.mem_used[n] + a.memory_mib > self.mem_cap[n]:
            raise errors.InvalidInputError(f"pod {a.pod}: memory over capacity on {self.names[n]}")
        for g in a.gpu_indices:
            if not self.gpu_real[n, g] or self.gpu_free[n, g] < a.milli_per_gpu:
                raise errors.InvalidInputError(
                    f"pod {a.pod}: GPU {g} on {self.names[n]} has {self.gpu_free[n, g]}m free, "
                    f"{a.milli_per_gpu}m asked"
                )
        if len(set(a.gpu_indices)) != len(a.gpu_indices):
            raise errors.InvalidInputError(f"pod {a.pod}: the same GPU given twice")
        if a.mig_profile:
            taken = self.mig_taken.get((n, a.mig_gpu))
            layout = self.mig_layouts.get((n, a.mig_gpu))
            if taken is None or layout is None:
                raise errors.InvalidInputError(f"pod {a.pod}: GPU {a.mig_gpu} is not MIG")
            for s in a.mig_slices:
                if taken[s] or layout.slices[s].profile != a.mig_profile:
                    raise errors.InvalidInputError(f"pod {a.pod}: MIG slice {s} not available")
            for s in a.mig_slices:
                taken[s] = True
            self.mig_free[a.mig_profile][n] -= len(a.mig_slices)
        self.cpu_used[n] += a.cpu_milli
        self.mem_used[n] += a.memory_mib
        for g in a.gpu_indices:
            self.gpu_free[n, g] -= a.milli_per_gpu
        if a.gpu_indices:
            counts = self.pods_by_milli.setdefault(
                a.milli_per_gpu, np.zeros(len(self), dtype=np.int64)
            )
            counts[n] += 1
        self.allocations[a.pod] = a
        self.version[n] += 1

    def release(self, pod: str) -> Allocation | None:
        """Give back what a pod holds; None when it holds nothing."""
        a = self.allocations.pop(pod, None)
        if a is None:
            return None
        n = a.node
        self.cpu_used[n] -= a.cpu_milli
        self.mem_used[n] -= a.memory_mib
        for g in a.gpu_indices:
            self.gpu_free[n, g] += a.milli_per_gpu
        if a.gpu_indices:
            self.pods_by_milli[a.milli_per_gpu][n] -= 1
        if a.mig_profile:
            taken = self.mig_taken[(n, a.mig_gpu)]
            for s in a.mig_slices:
                taken[s] = False
            self.mig_free[a.mig_profile][n] += len(a.mig_slices)
        self.version[n] += 1
        return a

    def repartition(self, node: int, gpu: int, layout: gpus.MigLayout | None) -> None:
        """Give a GPU a new MIG layout (None: back to a plain GPU). Its MIG slices must be idle."""
        taken = self.mig_taken.get((node, gpu))
        if taken is not None and any(taken):
            raise errors.InvalidLayoutError(
                f"{self.names[node]} GPU {gpu}: cannot repartition while MIG slices are in use"
            )
        if taken is None and self.gpu_real[node, gpu] and self.gpu_free[node, gpu] < 1000:
            raise errors.InvalidLayoutError(
                f"{self.names[node]} GPU {gpu}: cannot enable MIG while pods use the GPU"
            )
        old = self.mig_layouts.pop((node, gpu), None)
        self.mig_taken.pop((node, gpu), None)
        if old is not None:
            for s in old.slices:
                self.mig_free[s.profile][node] -= 1
        if layout is None:
            self.gpu_real[node, gpu] = True
            self.gpu_free[node, gpu] = resources.GPU_MILLI
        else:
            self._set_layout(node, gpu, layout)
        self.version[node] += 1

    # ---- helpers -------------------------------------------------------------------------

    def _set_layout(self, node: int, gpu: int, layout: gpus.MigLayout) -> None:
        model = gpus.model_named(layout.model)
        checked = gpus.validate_layout(model, layout.slices)
        self.gpu_real[node, gpu] = False
        self.gpu_free[node, gpu] = 0
        self.mig_layouts[(node, gpu)] = checked
        self.mig_taken[(node, gpu)] = [False] * len(checked.slices)
        for s in checked.slices:
            counts = self.mig_free.setdefault(s.profile, np.zeros(len(self), dtype=np.int64))
            counts[node] += 1

    def _mig_milli(self, a: Allocation) -> int:
        layout = self.mig_layouts.get((a.node, a.mig_gpu))
        if layout is None or a.mig_profile is None:
            return 0
        profile = gpus.model_named(layout.model).profile(a.mig_profile)
        return len(a.mig_slices) * profile.compute * resources.GPU_MILLI // gpus.COMPUTE_SLICES


def _replicas(node: cluster.Node) -> int:
    raw = node.labels.get(LABEL_REPLICAS, "")
    if not raw:
        return 1
    try:
        value = int(raw)
    except ValueError:
        raise errors.InvalidInputError(
            f"node {node.name}: label {LABEL_REPLICAS}={raw!r} is not an integer"
        ) from None
    if not 1 <= value <= resources.GPU_MILLI:
        raise errors.InvalidInputError(f"node {node.name}: {LABEL_REPLICAS} must be 1..1000")
    return value


def from_snapshot(nodes: Iterable[cluster.Node], pods: Iterable[cluster.Pod] = ()) -> ClusterState:
    """A state for these nodes with the bound pods' requests already taken.

    A bound pod's GPUs come from `pod.gpu_indices` when set; otherwise the first GPUs with room.
    """
    state = ClusterState(nodes)
    for pod in pods:
        if pod.node is None or pod.phase not in (
            cluster.PodPhase.RUNNING,
            cluster.PodPhase.PENDING,
        ):
            continue
        if pod.node not in state.index:
            raise errors.InvalidInputError(f"pod {pod.key} is bound to unknown node {pod.node}")
        demand = demands.from_pod(pod)
        state.assign(occupy(state, demand, state.index[pod.node], pod.gpu_indices))
    return state


def occupy(
    state: ClusterState, demand: demands.Demand, node: int, gpu_indices: Iterable[int] = ()
) -> Allocation:
    """An allocation of `demand` on `node`, on the given GPUs or the first ones with room;
    raises InvalidInputError when the node has too few GPUs with room."""
    chosen = tuple(gpu_indices)
    milli = int(state.share_milli(demand)[node]) or demand.per_gpu_milli
    count = 1 if demand.kind == "share" or milli < resources.GPU_MILLI else demand.gpus
    if demand.kind in ("share", "whole") and not chosen:
        room = np.flatnonzero(state.gpu_real[node] & (state.gpu_free[node] >= milli))
        chosen = tuple(int(g) for g in room[:count])
        if len(chosen) < count:
            raise errors.InvalidInputError(
                f"pod {demand.pod}: {count} GPU(s) with {milli}m free wanted on "
                f"{state.names[node]}, {len(chosen)} found"
            )
    mig_gpu, slices = -1, tuple[int, ...]()
    if demand.kind == "mig":
        mig_gpu, slices = first_mig_slices(state, node, demand)
    return Allocation(
        pod=demand.pod,
        node=node,
        gpu_indices=chosen if demand.kind in ("share", "whole") else (),
        milli_per_gpu=milli if demand.kind in ("share", "whole") else 0,
        cpu_milli=demand.cpu_milli,
        memory_mib=demand.memory_mib,
        mig_gpu=mig_gpu,
        mig_slices=slices,
        mig_profile=demand.mig_profile,
    )


def first_mig_slices(
    state: ClusterState, node: int, demand: demands.Demand
) -> tuple[int, tuple[int, ...]]:
    """Free slices of the demand's profile on one GPU of the node, preferring the fullest GPU."""
    best: tuple[int, int, tuple[int, ...]] | None = None
    for (n, g), layout in sorted(state.mig_layouts.items()):
        if n != node:
            continue
        taken = state.mig_taken[(n, g)]
        free = tuple(
            i
            for i, s in enumerate(layout.slices)
            if s.profile == demand.mig_profile and not taken[i]
        )
        if len(free) >= demand.mig_count:
            idle = sum(1 for t in taken if not t)
            if best is None or idle < best[0]:
                best = (idle, g, free[: demand.mig_count])
    if best is None:
        return -1, ()
    return best[1], best[2]


def counts_by_profile(state: ClusterState) -> Mapping[str, int]:
    """Free MIG slices in the whole cluster, by profile."""
    return {p: int(c.sum()) for p, c in state.mig_free.items()}
