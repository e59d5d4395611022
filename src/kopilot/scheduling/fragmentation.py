"""GPU fragmentation as defined by FGD (Weng et al., "Beware of Fragmentation: Scheduling
GPU-Sharing Workloads with Fragmentation Gradient Descent", USENIX ATC '23).

The fragmentation of node n with respect to one task shape m, F_n(m), is the unallocated GPU
capacity of n that m cannot use:

- if m cannot run on n at all (wrong GPU model, too little CPU, too few GPUs with room, or m asks
  for no GPU), every unallocated milli-GPU of n is a fragment;
- otherwise, the free capacity of each GPU with less room than m asks per GPU is a fragment (for a
  whole-GPU task, every partly used GPU).

Against a target workload (task shapes with their popularity p_m), F_n = sum_m p_m F_n(m), the
expected capacity that a task drawn from the workload cannot use. FGD places a pod where it
increases F_n the least, choosing among the node's GPUs too.

`Fragmentation` holds per-node figures (for every task shape: the free capacity on GPUs too small
for it, the count of GPUs big enough) and recomputes only the rows of nodes that changed (by
`ClusterState.version`). `delta()` evaluates every (node, GPU) candidate in one vectorised pass,
and keeps its result per task shape, so a pod shaped like an earlier one costs only the nodes
that changed since.

Three optional terms, off by default (plain FGD), are used by kopilot's policy (`kopilots`):
`stranding` (free GPU capacity the node's free CPU and memory cannot feed), `remnant` (the change of
the node's lasting remnants: the free milli on its partly used GPUs that the fillers it can still
host will not fill, see `remnants`) and `reserve` (GPU models that model-constrained shapes need).
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from kopilot.model import resources
from kopilot.scheduling import demands, remnants, state

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_NO_ROOM = 10 * resources.GPU_MILLI
MAX_SHAPES = 256
"""Task shapes whose per-node fragmentation increase `Fragmentation.delta` keeps."""

_ShapeKey = tuple[int, int, int, int, frozenset[str], str | None, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskShape:
    """One typical task: per-GPU milli, GPU count, CPU, allowed models, and its popularity."""

    milli: int
    count: int
    cpu_milli: int
    memory_mib: int
    models: frozenset[str]
    popularity: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Workload:
    """The target workload: typical task shapes and how often each arrives."""

    shapes: tuple[TaskShape, ...]
    cpu_per_gpu_milli: float | None = None
    """CPU milli asked per milli-GPU by all the pods the workload was built from (every pod,
    not only the shapes kept)."""

    @property
    def size(self) -> int:
        return len(self.shapes)


def workload_from(
    items: Iterable[demands.Demand], *, coverage: float = 0.95, by_gpu: bool = False
) -> Workload:
    """The popularity distribution of task shapes in `items` (e.g. a trace's pod list).

    Shapes are grouped by (CPU, per-GPU milli, GPU count, GPU models), as the FGD simulator does,
    and kept from the most popular down until `coverage` of the pods is covered. With `by_gpu`,
    a shape's weight is its GPU demand instead of its pod count.
    """
    counts: Counter[tuple[int, int, int, frozenset[str]]] = Counter()
    all_cpu = all_gpu = 0
    memory: dict[tuple[int, int, int, frozenset[str]], int] = {}
    for d in items:
        if d.kind == "mig":
            continue
        all_cpu += d.cpu_milli
        all_gpu += d.gpu_milli_total
        key = (d.cpu_milli, d.per_gpu_milli, d.gpu_count, d.models)
        weight = d.gpu_milli_total / resources.GPU_MILLI if by_gpu else 1.0
        counts[key] += weight  # type: ignore[assignment]
        memory[key] = max(memory.get(key, 0), d.memory_mib)
    total = float(sum(counts.values()))
    if total <= 0:
        return Workload(shapes=())
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0][0], kv[0][1], kv[0][2]))
    shapes: list[TaskShape] = []
    covered = 0.0
    for (cpu, milli, count, models), n in ranked:
        shapes.append(
            TaskShape(
                milli=milli,
                count=count,
                cpu_milli=cpu,
                memory_mib=memory[(cpu, milli, count, models)],
                models=models,
                popularity=n / total,
            )
        )
        covered += n / total
        if covered >= coverage - 1e-12:
            break
    return Workload(shapes=tuple(shapes), cpu_per_gpu_milli=all_cpu / all_gpu if all_gpu else None)


class Fragmentation:
    """Per-node fragmentation of one cluster against one workload, kept up to date lazily."""

    def __init__(
        self,
        cluster: state.ClusterState,
        workload: Workload,
        *,
        memory: bool = False,
        stranding: float = 0.0,
        remnant: float = 0.0,
        reserve: float = 0.0,
    ) -> None:
        self.cluster = cluster
        self.reserve = reserve
        self.workload = workload
        self.use_memory = memory
        self.stranding = stranding
        self.remnant = remnant
        self.pressure = model_pressure(cluster, workload)
        shapes = workload.shapes
        self.m: IntArray = np.array([s.milli for s in shapes], dtype=np.int64)
        self.k: IntArray = np.array([s.count for s in shapes], dtype=np.int64)
        self.c: IntArray = np.array([s.cpu_milli for s in shapes], dtype=np.int64)
        self.mem: IntArray = np.array([s.memory_mib for s in shapes], dtype=np.int64)
        self.p: FloatArray = np.array([s.popularity for s in shapes], dtype=np.float64)
        gpu_milli = float((self.p * self.m * self.k).sum())
        self.cpu_per_milli = float((self.p * self.c * (self.k > 0)).sum()) / max(gpu_milli, 1.0)
        self.mem_per_milli = float((self.p * self.mem * (self.k > 0)).sum()) / max(gpu_milli, 1.0)
        if self.stranding and cpu_oversubscribed(cluster, workload):
            # Every pod together needs more CPU per GPU than the cluster has: some GPUs will be
            # CPU-starved whatever the placement, and steering by stranding measured worse
            # than plain fragmentation on such workloads (openb cpu250/cpu300).
            self.stranding = 0.0
        gpu_shape = self.k > 0
        access = np.zeros((len(cluster), len(shapes)), dtype=np.bool_)
        for t, s in enumerate(shapes):
            access[:, t] = cluster.models_mask(s.models) & (cluster.model_id >= 0)
        self.access = access & gpu_shape[None, :]
        self.lasting = remnants.Lasting(
            remnants.fillers(single_gpu_popularity(workload)), np.where(self.k == 1, self.m, 0)
        )
        n, t_count = len(cluster), len(shapes)
        self.remnants: FloatArray = np.zeros(n, dtype=np.float64)
        """Per node, its lasting remnant (kept only with the `remnant` term)."""
        self.small: IntArray = np.zeros((n, t_count), dtype=np.int64)
        self.big: IntArray = np.zeros((n, t_count), dtype=np.int64)
        self.total: IntArray = np.zeros(n, dtype=np.int64)
        self.frag: FloatArray = np.zeros(n, dtype=np.float64)
        self.seen: IntArray = np.full(n, -1, dtype=np.int64)
        self._mean_pressure: dict[frozenset[str], float] = {}
        """Per set of allowed models, the mean pressure of those the cluster has (`_excess`)."""
        self._deltas: OrderedDict[_ShapeKey, tuple[FloatArray, IntArray, IntArray]] = OrderedDict()

    def refresh(self) -> None:
        """Recompute the rows of nodes that changed since the last call."""
        rows = np.flatnonzero(self.cluster.version != self.seen)
        if rows.size == 0:
            return
        cl = self.cluster
        free = self._real_free(rows)  # [R, G]
        fits = cl.gpu_real[rows][:, :, None] & (free[:, :, None] >= self.m[None, None, :])
        self.big[rows] = fits.sum(axis=1)
        self.small[rows] = np.where(fits, 0, free[:, :, None]).sum(axis=1)
        self.total[rows] = free.sum(axis=1)
        self.frag[rows] = self._frag(
            rows,
            small=self.small[rows],
            big=self.big[rows],
            total=self.total[rows],
            cpu_free=cl.cpu_free[rows],
            mem_free=cl.mem_free[rows],
        )
        if self.remnant:
            self.remnants[rows] = self._lasting(rows, free, cl.cpu_free[rows], cl.mem_free[rows])
        self.seen[rows] = cl.version[rows]

    def _frag(
        self,
        nodes: IntArray,
        *,
        small: IntArray,
        big: IntArray,
        total: IntArray,
        cpu_free: IntArray,
        mem_free: IntArray,
    ) -> FloatArray:
        usable = self.access[nodes] & (cpu_free[:, None] >= self.c[None, :]) & (big >= self.k)
        if self.use_memory:
            usable &= mem_free[:, None] >= self.mem[None, :]
        lost = np.where(usable, small, total[:, None]).astype(np.float64)
        frag = lost @ self.p
        if self.stranding:
            frag += self.stranding * self._stranded(total, cpu_free, mem_free)
        return frag

    def _lasting(
        self, nodes: IntArray, free: IntArray, cpu_free: IntArray, mem_free: IntArray
    ) -> FloatArray:
        """The lasting remnant of these nodes with these free GPUs, CPU and memory."""
        usable = self.access[nodes] & (cpu_free[:, None] >= self.c[None, :])
        if self.use_memory:
            usable &= mem_free[:, None] >= self.mem[None, :]
        return self.lasting.of(usable, free)

    def _lasting_with(self, nodes: IntArray, free: IntArray, demand: demands.Demand) -> FloatArray:
        """`_lasting` once `demand` has taken its CPU and memory from these nodes, which are left
        with these free GPUs."""
        cl = self.cluster
        return self._lasting(
            nodes,
            free,
            cl.cpu_free[nodes] - demand.cpu_milli,
            cl.mem_free[nodes] - demand.memory_mib,
        )

    def _real_free(self, nodes: IntArray) -> IntArray:
        """Free milli per GPU slot of these nodes (0 for slots with no GPU): a fresh array."""
        cl = self.cluster
        out: IntArray = np.where(cl.gpu_real[nodes], cl.gpu_free[nodes], 0)
        return out

    def _stranded(self, total: IntArray, cpu_free: IntArray, mem_free: IntArray) -> FloatArray:
        """Free GPU milli that the node's free CPU (and memory) cannot feed, at the workload's
        average CPU (memory) per milli-GPU: a smooth early warning of CPU-starved GPUs."""
        fed = cpu_free / max(self.cpu_per_milli, 1e-9)
        if self.use_memory:
            fed = np.minimum(fed, mem_free / max(self.mem_per_milli, 1e-9))
        return np.maximum(0.0, total - fed)

    def delta(
        self, demand: demands.Demand, feasible: npt.NDArray[np.bool_]
    ) -> tuple[FloatArray, IntArray]:
        """For each node, the least increase of fragmentation placing `demand` can cause there,
        and the GPU that achieves it (-1 for whole GPUs / no GPU). Infeasible nodes get +inf.

        A node's figures depend only on its own row of the state and on the pod's shape (not
        its name): they are kept per shape (the last MAX_SHAPES shapes asked about) and
        recomputed only for the nodes whose `version` changed since.
        """
        self.refresh()
        cl = self.cluster
        key = (
            demand.cpu_milli,
            demand.memory_mib,
            demand.gpus,
            demand.gpu_milli,
            demand.models,
            demand.mig_profile,
            demand.mig_count,
        )
        kept = self._deltas.get(key)
        if kept is None:
            n = len(cl)
            kept = (np.zeros(n), np.full(n, -1, dtype=np.int64), np.full(n, -1, dtype=np.int64))
            self._deltas[key] = kept
            while len(self._deltas) > MAX_SHAPES:
                self._deltas.popitem(last=False)
        else:
            self._deltas.move_to_end(key)
        out, best_gpu, stamp = kept
        stale = feasible & (stamp != cl.version)
        if stale.any():
            fresh_out, fresh_gpu = self._delta(demand, stale)
            out[stale] = fresh_out[stale]
            best_gpu[stale] = fresh_gpu[stale]
            stamp[stale] = cl.version[stale]
        return np.where(feasible, out, np.inf), np.where(feasible, best_gpu, -1)

    def _delta(
        self, demand: demands.Demand, feasible: npt.NDArray[np.bool_]
    ) -> tuple[FloatArray, IntArray]:
        cl = self.cluster
        n = len(cl)
        out = np.full(n, np.inf, dtype=np.float64)
        best_gpu = np.full(n, -1, dtype=np.int64)
        nodes = np.flatnonzero(feasible)
        if nodes.size == 0 or self.p.size == 0:
            out[nodes] = 0.0
            return out, best_gpu
        share = cl.share_milli(demand)
        share_nodes = nodes[share[nodes] > 0]
        other_nodes = nodes[share[nodes] == 0]
        if other_nodes.size:
            k = demand.gpus if demand.kind == "whole" else 0
            big = self.big[other_nodes] - k * (self.m[None, :] <= resources.GPU_MILLI)
            after = self._frag(
                other_nodes,
                small=self.small[other_nodes],
                big=big,
                total=self.total[other_nodes] - k * resources.GPU_MILLI,
                cpu_free=cl.cpu_free[other_nodes] - demand.cpu_milli,
                mem_free=cl.mem_free[other_nodes] - demand.memory_mib,
            )
            out[other_nodes] = after - self.frag[other_nodes]
            if self.reserve and k:
                out[other_nodes] += (
                    self.reserve * k * resources.GPU_MILLI * self._excess(demand, other_nodes)
                )
            if self.remnant:
                # whole GPUs come off idle ones, no hole: only the CPU and memory taken count
                lasting = self._lasting_with(other_nodes, self._real_free(other_nodes), demand)
                out[other_nodes] += self.remnant * (lasting - self.remnants[other_nodes])
        if share_nodes.size:
            node_of, gpu_of, after = self._share_candidates(share_nodes, share[share_nodes], demand)
            delta = after - self.frag[node_of]
            starts = np.flatnonzero(_first_of_runs(node_of))
            mins = np.minimum.reduceat(delta, starts)
            owners = node_of[starts]
            out[owners] = mins
            # the first candidate of each node reaching its minimum
            is_min = delta <= np.repeat(mins, np.diff(starts, append=delta.size)) + 1e-9
            first = np.flatnonzero(is_min)
            keep = _first_of_runs(node_of[first])
            best_gpu[node_of[first][keep]] = gpu_of[first][keep]
        return out, best_gpu

    def _share_candidates(
        self, nodes: IntArray, need: IntArray, demand: demands.Demand
    ) -> tuple[IntArray, IntArray, FloatArray]:
        cl = self.cluster
        free = cl.gpu_free[nodes]
        ok = cl.gpu_real[nodes] & (free >= need[:, None])
        # One candidate per distinct free level on a node, the fullest GPU first (so that ties
        # between levels go to the best fit).
        key = np.where(ok, free, _NO_ROOM)
        order = np.argsort(key, axis=1, kind="stable")
        ranked = np.take_along_axis(key, order, axis=1)
        fresh = np.ones_like(ok)
        fresh[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
        row, pos = np.nonzero(fresh & (ranked < _NO_ROOM))
        gpu = order[row, pos]
        node_of = nodes[row]
        before = free[row, gpu]
        now = before - need[row]
        m = self.m[None, :]
        d_small = np.where(now[:, None] < m, now[:, None], 0) - np.where(
            before[:, None] < m, before[:, None], 0
        )
        d_big = (now[:, None] >= m).astype(np.int64) - (before[:, None] >= m)
        after = self._frag(
            node_of,
            small=self.small[node_of] + d_small,
            big=self.big[node_of] + d_big,
            total=self.total[node_of] - need[row],
            cpu_free=cl.cpu_free[node_of] - demand.cpu_milli,
            mem_free=cl.mem_free[node_of] - demand.memory_mib,
        )
        if self.remnant:
            left = self._real_free(node_of)
            left[np.arange(left.shape[0]), gpu] = now
            lasting = self._lasting_with(node_of, left, demand)
            after = after + self.remnant * (lasting - self.remnants[node_of])
        if self.reserve:
            after = after + self.reserve * need[row] * self._excess(demand, node_of)
        return node_of, gpu.astype(np.int64), after

    def _excess(self, demand: demands.Demand, nodes: IntArray) -> FloatArray:
        """How much scarcer the nodes' GPU model is than the average model the pod may use."""
        cl = self.cluster
        mean = self._mean_pressure.get(demand.models)
        if mean is None:
            allowed = cl.models_mask(demand.models) & (cl.model_id >= 0)
            ids = np.unique(cl.model_id[allowed])
            # NaN: only one model will do, no choice
            mean = float(self.pressure[ids].mean()) if ids.size > 1 else float("nan")
            self._mean_pressure[demand.models] = mean
        if math.isnan(mean):
            return np.zeros(nodes.size, dtype=np.float64)
        out: FloatArray = np.maximum(0.0, self.pressure[cl.model_id[nodes]] - mean)
        return out


def cpu_demand_per_milli(workload: Workload) -> float:
    """CPU milli the workload asks per milli-GPU, CPU-only tasks included."""
    if workload.cpu_per_gpu_milli is not None:
        return workload.cpu_per_gpu_milli
    gpu = sum(s.popularity * s.milli * s.count for s in workload.shapes)
    cpu = sum(s.popularity * s.cpu_milli for s in workload.shapes)
    return cpu / gpu if gpu > 0 else float("inf")


def cpu_oversubscribed(cluster: state.ClusterState, workload: Workload) -> bool:
    """True when the workload needs more CPU per GPU than the cluster's nodes have."""
    supply = float(cluster.cpu_cap.sum()) / max(cluster.gpu_cap_milli, 1)
    return cpu_demand_per_milli(workload) >= supply


def model_pressure(cluster: state.ClusterState, workload: Workload) -> FloatArray:
    """Per GPU model: the share of its capacity that model-constrained task shapes expect to
    need, relative to the whole workload's GPU demand per unit of cluster capacity.

    A constrained shape's demand is spread over the models it allows in proportion to their
    capacity. A model that pods can only run on (the trace's `gpu_spec`) is under pressure; the
    `reserve` term keeps flexible pods off it while other models have room.
    """
    count = len(cluster.models)
    capacity = np.zeros(count, dtype=np.float64)
    for m in range(count):
        capacity[m] = float(cluster.gpu_count[cluster.model_id == m].sum())
    demand = np.zeros(count, dtype=np.float64)
    total = 0.0
    for s in workload.shapes:
        gpu = s.popularity * s.milli * s.count / resources.GPU_MILLI
        total += gpu
        if not s.models or not gpu:
            continue
        ids = [cluster.model_index[m] for m in s.models if m in cluster.model_index]
        allowed_cap = float(capacity[ids].sum()) if ids else 0.0
        for i in ids:
            if allowed_cap > 0:
                demand[i] += gpu * capacity[i] / allowed_cap
    overall = total / max(float(capacity.sum()), 1.0)
    if overall <= 0:
        return np.zeros(count, dtype=np.float64)
    out: FloatArray = demand / np.maximum(capacity, 1.0) / overall
    return out


def single_gpu_popularity(workload: Workload) -> dict[int, float]:
    """Popularity of the workload's single-GPU tasks by per-GPU milli (shares and whole GPUs)."""
    out: dict[int, float] = {}
    for s in workload.shapes:
        if s.count == 1 and s.milli > 0:
            out[s.milli] = out.get(s.milli, 0.0) + s.popularity
    return out


def _first_of_runs(values: IntArray) -> npt.NDArray[np.bool_]:
    """True where a run of equal values starts (`values` non-empty)."""
    out = np.empty(values.size, dtype=np.bool_)
    out[0] = True
    np.not_equal(values[1:], values[:-1], out=out[1:])
    return out
