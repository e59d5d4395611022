"""Fragmentation Gradient Descent (FGD, USENIX ATC '23) as a score plugin and a GPU picker.

The score of a node is minus the increase of its fragmentation (see `fragmentation`) when the pod
is placed there on its best GPU; the picker then puts the pod on that GPU.
"""

from __future__ import annotations

import random

import numpy as np
import numpy.typing as npt

from kopilot.scheduling import demands, fragmentation, framework, state


class FragmentationScore:
    """Minus the least fragmentation increase the pod causes on each node."""

    def __init__(
        self,
        workload: fragmentation.Workload,
        *,
        name: str = "FGD",
        memory: bool = False,
        stranding: float = 0.0,
        remnant: float = 0.0,
        reserve: float = 0.0,
    ) -> None:
        self.reserve = reserve
        self.remnant = remnant
        self._name = name
        self.workload = workload
        self.memory = memory
        self.stranding = stranding
        self._cache: tuple[state.ClusterState, fragmentation.Fragmentation] | None = None
        self._last: tuple[demands.Demand, int, npt.NDArray[np.int64]] | None = None

    @property
    def name(self) -> str:
        return self._name

    def fragmentation(self, cluster: state.ClusterState) -> fragmentation.Fragmentation:
        """The per-node fragmentation of this cluster, built on first use and kept fresh."""
        if self._cache is None or self._cache[0] is not cluster:
            self._cache = (
                cluster,
                fragmentation.Fragmentation(
                    cluster,
                    self.workload,
                    memory=self.memory,
                    stranding=self.stranding,
                    remnant=self.remnant,
                    reserve=self.reserve,
                ),
            )
        return self._cache[1]

    def score(
        self,
        cluster: state.ClusterState,
        demand: demands.Demand,
        feasible: npt.NDArray[np.bool_],
        rng: random.Random,
    ) -> framework.FloatArray:
        delta, best_gpu = self.fragmentation(cluster).delta(demand, feasible)
        self._last = (demand, int(cluster.version.sum()), best_gpu)
        return np.where(np.isfinite(delta), -delta, 0.0)

    def best_gpu(self, cluster: state.ClusterState, demand: demands.Demand, node: int) -> int:
        """The GPU the last `score` call found best on `node` for this demand (-1: any idle)."""
        last = self._last
        if last is not None and last[0] is demand and last[1] == int(cluster.version.sum()):
            return int(last[2][node])
        only = np.zeros(len(cluster), dtype=np.bool_)
        only[node] = True
        _, gpu = self.fragmentation(cluster).delta(demand, only)
        return int(gpu[node])


class FragmentationPicker:
    """Puts a share on the GPU whose use grows fragmentation least (whole GPUs: any idle ones)."""

    def __init__(self, plugin: FragmentationScore) -> None:
        self.plugin = plugin

    @property
    def name(self) -> str:
        return f"{self.plugin.name} (least fragmentation increase)"

    def pick(
        self, cluster: state.ClusterState, demand: demands.Demand, node: int, rng: random.Random
    ) -> state.Allocation:
        if demand.kind not in ("share", "whole"):
            return state.occupy(cluster, demand, node)
        gpu = self.plugin.best_gpu(cluster, demand, node)
        if gpu < 0:
            return state.occupy(cluster, demand, node)
        return state.occupy(cluster, demand, node, (gpu,))
