"""A profile as a "placer": `place(pod) -> bool`, `release(pod)`, `gpu_free_milli()`.

This is the shape the cluster twin (`kopilot.sim.clusters.Placer`) drives, so any profile can be
dropped into it:

    placers.ProfilePlacer(nodes, "kopilot", rng=randomness.rng(seed, "placement"))

Without a `workload`, FGD-style profiles learn the target workload from the pods they are asked
to place (the profile is rebuilt after 1, 2, 4, 8, ... pods, so the cost stays small); pass
`workload=profiles.workload_of(trace_pods)` to use a known pod list, as the FGD study does.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from kopilot.model import cluster
from kopilot.scheduling import demands, fragmentation, framework, placing, profiles, state


class ProfilePlacer:
    """One profile placing pods on one mutable cluster state, keeping the last decision."""

    def __init__(
        self,
        nodes: Sequence[cluster.Node],
        profile: str = "kopilot",
        *,
        workload: fragmentation.Workload | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.profile_name = profile
        self.state = state.ClusterState(nodes)
        self.rng = rng if rng is not None else random.Random(0)
        self.fixed = workload
        self.seen: list[demands.Demand] = []
        self.last: framework.Decision | None = None
        self._scheduler: placing.Scheduler | None = None
        self._real = [(i, g) for i, node in enumerate(nodes) for g in range(len(node.gpus))]
        profiles.named(profile, workload=workload or fragmentation.Workload(shapes=()))

    @property
    def name(self) -> str:
        return self.profile_name

    def _current(self) -> placing.Scheduler:
        if self._scheduler is None:
            workload = self.fixed or fragmentation.workload_from(self.seen)
            self._scheduler = placing.Scheduler(
                self.state, profiles.named(self.profile_name, workload=workload), self.rng
            )
        return self._scheduler

    def decide(self, pod: cluster.Pod) -> framework.Decision:
        """Place the pod (changing the state when it fits) and return the full decision."""
        demand = demands.from_pod(pod)
        if self.fixed is None:
            self.seen.append(demand)
            n = len(self.seen)
            if n & (n - 1) == 0:
                self._scheduler = None
        self.last = self._current().schedule(demand)
        return self.last

    def place(self, pod: cluster.Pod) -> bool:
        return self.decide(pod).placed

    def release(self, pod: cluster.Pod) -> None:
        self.state.release(pod.key)

    def gpu_free_milli(self) -> npt.NDArray[np.int64]:
        """Free milli-GPU of every GPU of the cluster, node by node (MIG GPUs count 0)."""
        st = self.state
        free = np.where(st.gpu_real, st.gpu_free, 0)
        rows = np.array([i for i, _ in self._real], dtype=np.int64)
        cols = np.array([g for _, g in self._real], dtype=np.int64)
        out: npt.NDArray[np.int64] = free[rows, cols]
        return out
