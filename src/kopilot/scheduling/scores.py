"""The FGD study's baseline score plugins: Random, DotProduct, GPU Clustering, GPU Packing and
Best-Fit. Each returns one raw score per node, higher is better; the profile normalises them."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from kopilot.model import resources
from kopilot.scheduling import demands, framework, state


def _gpu_taken(cluster: state.ClusterState, demand: demands.Demand) -> framework.FloatArray:
    """Milli-GPU the pod takes on each node (a replica on a time-sliced node)."""
    share = cluster.share_milli(demand)
    out: framework.FloatArray = np.where(share > 0, share, demand.gpu_milli_total).astype(
        np.float64
    )
    return out


def _gpu_free_total(cluster: state.ClusterState) -> framework.FloatArray:
    out: framework.FloatArray = (
        np.where(cluster.gpu_real, cluster.gpu_free, 0).sum(axis=1).astype(np.float64)
    )
    return out


@dataclass(frozen=True, slots=True)
class RandomScore:
    """Any feasible node, uniformly at random."""

    name: str = "Random"

    def score(
        self,
        cluster: state.ClusterState,
        demand: demands.Demand,
        feasible: npt.NDArray[np.bool_],
        rng: random.Random,
    ) -> framework.FloatArray:
        return np.random.default_rng(rng.getrandbits(64)).random(len(cluster))


@dataclass(frozen=True, slots=True)
class BestFit:
    """The node left with the least free resources after placing: CPU and GPU, each as a fraction
    of the node's capacity, summed."""

    name: str = "BestFit"

    def score(
        self,
        cluster: state.ClusterState,
        demand: demands.Demand,
        feasible: npt.NDArray[np.bool_],
        rng: random.Random,
    ) -> framework.FloatArray:
        cpu_left = (cluster.cpu_free - demand.cpu_milli) / np.maximum(cluster.cpu_cap, 1)
        gpu_cap = np.maximum(cluster.gpu_count * resources.GPU_MILLI, 1)
        gpu_left = (_gpu_free_total(cluster) - _gpu_taken(cluster, demand)) / gpu_cap
        return np.asarray(-(cpu_left + gpu_left), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class DotProduct:
    """The smallest dot product between the pod's request and the node's free resources (CPU,
    memory, GPU, each normalised by the node's capacity): the node whose free capacity is least
    aligned with, hence least wasted by, this pod (the FGD study's Tetris-like baseline)."""

    name: str = "DotProduct"

    def score(
        self,
        cluster: state.ClusterState,
        demand: demands.Demand,
        feasible: npt.NDArray[np.bool_],
        rng: random.Random,
    ) -> framework.FloatArray:
        cpu_cap = np.maximum(cluster.cpu_cap, 1).astype(np.float64)
        mem_cap = np.maximum(cluster.mem_cap, 1).astype(np.float64)
        gpu_cap = np.maximum(cluster.gpu_count * resources.GPU_MILLI, 1).astype(np.float64)
        dot = (
            (demand.cpu_milli / cpu_cap) * (cluster.cpu_free / cpu_cap)
            + (demand.memory_mib / mem_cap) * (cluster.mem_free / mem_cap)
            + (_gpu_taken(cluster, demand) / gpu_cap) * (_gpu_free_total(cluster) / gpu_cap)
        )
        return np.asarray(-dot, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class GpuPacking:
    """Prefer, in order: a GPU already partly used that the share fits on; a node with some GPU
    in use; an idle node."""

    name: str = "GpuPacking"

    def score(
        self,
        cluster: state.ClusterState,
        demand: demands.Demand,
        feasible: npt.NDArray[np.bool_],
        rng: random.Random,
    ) -> framework.FloatArray:
        used = cluster.gpu_real & (cluster.gpu_free < resources.GPU_MILLI)
        active = used.any(axis=1)
        tier = np.where(active, 1.0, 0.0)
        share = cluster.share_milli(demand)
        if demand.kind == "share" or (share > 0).any():
            partial_fit = used & (cluster.gpu_free >= np.maximum(share, 1)[:, None])
            tier = np.where((share > 0) & partial_fit.any(axis=1), 2.0, tier)
        return tier


@dataclass(frozen=True, slots=True)
class GpuClustering:
    """Keep pods with the same GPU request together: prefer nodes already running pods that ask
    the same per-GPU milli, then nodes running other GPU pods, then idle nodes."""

    name: str = "GpuClustering"

    def score(
        self,
        cluster: state.ClusterState,
        demand: demands.Demand,
        feasible: npt.NDArray[np.bool_],
        rng: random.Random,
    ) -> framework.FloatArray:
        n = len(cluster)
        if demand.kind in ("none", "mig"):
            return np.zeros(n, dtype=np.float64)
        any_pods = np.zeros(n, dtype=np.int64)
        for counts in cluster.pods_by_milli.values():
            any_pods += counts
        same = cluster.pods_by_milli.get(demand.per_gpu_milli)
        tier = np.where(any_pods > 0, 1.0, 0.0)
        if same is not None:
            tier = np.where(same > 0, 2.0, tier)
        return tier
