"""GPU pickers: which GPU(s) or MIG slices a pod gets on the node already chosen."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from kopilot.scheduling import demands, state


def _candidates(cluster: state.ClusterState, demand: demands.Demand, node: int) -> list[int]:
    need = int(cluster.share_milli(demand)[node]) or demand.per_gpu_milli
    room = cluster.gpu_real[node] & (cluster.gpu_free[node] >= need)
    return [int(g) for g in np.flatnonzero(room)]


def _whole(cluster: state.ClusterState, demand: demands.Demand, node: int) -> bool:
    return demand.kind == "whole" and int(cluster.share_milli(demand)[node]) == 0


@dataclass(frozen=True, slots=True)
class FirstFit:
    """The lowest-numbered GPUs with room."""

    name: str = "first-fit"

    def pick(
        self, cluster: state.ClusterState, demand: demands.Demand, node: int, rng: random.Random
    ) -> state.Allocation:
        return state.occupy(cluster, demand, node)


@dataclass(frozen=True, slots=True)
class BestFit:
    """A share goes to the fullest GPU it fits on; whole GPUs to the first idle ones."""

    name: str = "best-fit"

    def pick(
        self, cluster: state.ClusterState, demand: demands.Demand, node: int, rng: random.Random
    ) -> state.Allocation:
        if demand.kind in ("none", "mig") or _whole(cluster, demand, node):
            return state.occupy(cluster, demand, node)
        room = _candidates(cluster, demand, node)
        best = min(room, key=lambda g: (int(cluster.gpu_free[node, g]), g))
        return state.occupy(cluster, demand, node, (best,))


@dataclass(frozen=True, slots=True)
class RandomGpu:
    """Any GPU(s) with room, uniformly at random."""

    name: str = "random"

    def pick(
        self, cluster: state.ClusterState, demand: demands.Demand, node: int, rng: random.Random
    ) -> state.Allocation:
        if demand.kind in ("none", "mig"):
            return state.occupy(cluster, demand, node)
        room = _candidates(cluster, demand, node)
        count = demand.gpus if _whole(cluster, demand, node) else 1
        return state.occupy(cluster, demand, node, tuple(sorted(rng.sample(room, count))))
