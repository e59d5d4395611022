"""The serving twin: a model service under a replayed demand curve, with real cold starts.

- Demand is the trace's request rate, held constant from one sample to the next.
- A replica created at t becomes ready at t + cold start (drawn from the trace's load latencies,
  plus a fixed start-up overhead for scheduling and image pull); it then serves up to
  `capacity_rps` within the latency SLO.
- Demand above ready capacity is not served within the SLO: it is counted as unserved requests,
  and the time during which it happens as SLO-violation time.
- Replicas hold their GPUs from creation (also while starting) until removed: that is what costs.
- Scaling down removes starting replicas first, then the newest ready ones.

`ServingWorld` implements the World port, so the same loop drives it as drives a real cluster.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field

import numpy as np

from kopilot.loop import worlds
from kopilot.model import actions, cluster, resources, series


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceSpec:
    name: str
    namespace: str
    capacity_rps: float
    min_replicas: int
    max_replicas: int
    initial_replicas: int
    request: resources.Resources
    startup_overhead_s: float
    """Scheduling + image pull + container start, before the model starts loading."""
    expected_cold_start_s: float
    """What the service's annotations tell kopilot to expect (e.g. the p90 of past starts)."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(slots=True)
class Replica:
    created: float
    ready_at: float


@dataclass(slots=True)
class Totals:
    """What the twin measured so far."""

    requests: float = 0.0
    unserved: float = 0.0
    violation_s: float = 0.0
    replica_s: float = 0.0
    ready_replica_s: float = 0.0
    cold_starts: list[float] = field(default_factory=list)


class ServingWorld:
    """One model service replayed against a demand trace (a World)."""

    def __init__(
        self,
        spec: ServiceSpec,
        demand: series.Series,
        cold_starts_s: np.ndarray,
        rng: random.Random,
        *,
        history_s: float = 4 * 3600.0,
    ) -> None:
        if len(demand) == 0:
            raise ValueError("serving twin: the demand trace is empty")
        self.spec = spec
        self.demand = demand
        self._cold = cold_starts_s
        self._rng = rng
        self._history_s = history_s
        self.replicas: list[Replica] = []
        self.totals = Totals()
        self._accounted_to = float(demand.times[0])
        start = float(demand.times[0])
        for _ in range(spec.initial_replicas):
            self.replicas.append(Replica(created=start, ready_at=start))

    # -- World port -------------------------------------------------------------------------
    def snapshot(self, now: float) -> cluster.ClusterSnapshot:
        ready = sum(1 for r in self.replicas if r.ready_at <= now)
        svc = cluster.ModelService(
            name=self.spec.name,
            namespace=self.spec.namespace,
            replicas=len(self.replicas),
            ready_replicas=ready,
            capacity_rps=self.spec.capacity_rps,
            cold_start_s=self.spec.expected_cold_start_s,
            min_replicas=self.spec.min_replicas,
            max_replicas=self.spec.max_replicas,
            request=self.spec.request,
        )
        t = self.demand.times
        hi = int(np.searchsorted(t, now, side="right"))
        lo = int(np.searchsorted(t, now - self._history_s, side="left"))
        observed = series.Series(times=t[lo:hi], values=self.demand.values[lo:hi])
        return cluster.ClusterSnapshot(time=now, services=(svc,), demand={svc.key: observed})

    def apply(self, action: actions.Action, now: float) -> worlds.Applied:
        if not isinstance(action, actions.Scale) or action.service != self.spec.key:
            return worlds.Applied(
                ok=False, detail=f"serving twin cannot apply {action.kind} on {action.target}"
            )
        self.account(now)
        want = action.replicas
        while len(self.replicas) < want:
            cold = self.spec.startup_overhead_s + float(
                self._cold[self._rng.randrange(len(self._cold))]
            )
            self.totals.cold_starts.append(cold)
            self.replicas.append(Replica(created=now, ready_at=now + cold))
        if len(self.replicas) > want:
            # As a ReplicaSet ranks pods to delete: starting replicas first, the newest started
            # first (the controller cannot know which start will be slowest, so neither does
            # the twin), then the ready ones that have been ready the shortest time.
            order = sorted(
                range(len(self.replicas)),
                key=lambda i: (
                    (1, -self.replicas[i].ready_at, -i)
                    if self.replicas[i].ready_at <= now
                    else (0, -self.replicas[i].created, -i)
                ),
            )
            gone = set(order[: len(self.replicas) - want])
            self.replicas = [r for i, r in enumerate(self.replicas) if i not in gone]
        return worlds.Applied(ok=True)

    # -- accounting -------------------------------------------------------------------------
    def demand_at(self, t: float) -> float:
        i = int(np.searchsorted(self.demand.times, t, side="right")) - 1
        return float(self.demand.values[i]) if i >= 0 else 0.0

    def ready_capacity(self, now: float) -> float:
        return sum(1 for r in self.replicas if r.ready_at <= now) * self.spec.capacity_rps

    def account(self, until: float) -> None:
        """Integrate served/unserved demand and replica time from the last accounted instant."""
        start = self._accounted_to
        if until <= start:
            return
        cuts = {start, until}
        cuts.update(r.ready_at for r in self.replicas if start < r.ready_at < until)
        t = self.demand.times
        lo = int(np.searchsorted(t, start, side="right"))
        hi = int(np.searchsorted(t, until, side="left"))
        cuts.update(float(x) for x in t[lo:hi])
        edges = sorted(cuts)
        tot = self.totals
        n = len(self.replicas)
        for a, b in itertools.pairwise(edges):
            dt = b - a
            d = self.demand_at(a)
            cap = self.ready_capacity(a)
            tot.requests += d * dt
            tot.replica_s += n * dt
            tot.ready_replica_s += (cap / self.spec.capacity_rps) * dt
            if d > cap + 1e-12:
                tot.unserved += (d - cap) * dt
                tot.violation_s += dt
        self._accounted_to = until

    @property
    def end(self) -> float:
        return float(self.demand.times[-1])

    @property
    def start(self) -> float:
        return float(self.demand.times[0])


def expected_cold_start(
    cold_starts_s: np.ndarray, overhead_s: float, quantile: float = 0.9
) -> float:
    """What to tell policies to plan for: a high quantile of past cold starts, plus overhead."""
    return overhead_s + float(np.quantile(cold_starts_s, quantile))
