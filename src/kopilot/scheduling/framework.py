"""The scheduling framework: filter and score plugins, their outcomes, and what a decision records.

As in the Kubernetes scheduling framework, a profile runs every Filter plugin (a node passes only
if all pass), then every Score plugin on the nodes left; each plugin's scores are normalised to
0..100 over the feasible nodes and weighted; the best total wins (ties broken by the injected
`random.Random`). Then a GpuPicker chooses the GPU(s) on the chosen node.

Plugins here work on all nodes at once (numpy arrays indexed by node) instead of one node per
call: a filter returns a boolean mask, a score a float array. The per-node verdicts of the
Kubernetes framework are still there: `Decision.node_table()` rebuilds them for `kopilot explain`.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from kopilot.scheduling import demands, state

FloatArray = npt.NDArray[np.float64]


class Code(enum.StrEnum):
    """A plugin's or a cycle's outcome, as in the Kubernetes framework."""

    SUCCESS = "Success"
    UNSCHEDULABLE = "Unschedulable"
    UNSCHEDULABLE_AND_UNRESOLVABLE = "UnschedulableAndUnresolvable"
    ERROR = "Error"


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    """An outcome: a code, the plugin that gave it, and reasons a person can read."""

    code: Code
    plugin: str = ""
    reasons: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.code is Code.SUCCESS

    def describe(self) -> str:
        text = "; ".join(self.reasons) or self.code.value
        return f"{self.plugin}: {text}" if self.plugin else text


@dataclass(frozen=True, slots=True, kw_only=True)
class FilterResult:
    """A filter's verdict on every node: `passed[n]`, and why the others failed."""

    passed: npt.NDArray[np.bool_]
    reason: str
    """What a failed node lacks, e.g. `Insufficient nvidia.com/gpu`."""
    unresolvable: bool = False
    """True when preempting pods would not help (wrong GPU model, node cordoned)."""


class Filter(Protocol):
    """Says which nodes can hold the pod at all."""

    @property
    def name(self) -> str: ...

    def filter(self, cluster: state.ClusterState, demand: demands.Demand) -> FilterResult: ...


class Score(Protocol):
    """Ranks feasible nodes: higher is better. Values on infeasible nodes are ignored."""

    @property
    def name(self) -> str: ...

    def score(
        self,
        cluster: state.ClusterState,
        demand: demands.Demand,
        feasible: npt.NDArray[np.bool_],
        rng: random.Random,
    ) -> FloatArray: ...


class GpuPicker(Protocol):
    """Chooses the GPUs (or MIG slices) a pod gets on the node already chosen."""

    @property
    def name(self) -> str: ...

    def pick(
        self,
        cluster: state.ClusterState,
        demand: demands.Demand,
        node: int,
        rng: random.Random,
    ) -> state.Allocation: ...


def normalise(raw: FloatArray, feasible: npt.NDArray[np.bool_]) -> FloatArray:
    """Min-max scale to 0..100 over feasible nodes; 0 elsewhere; all 100 when all are equal."""
    out = np.zeros_like(raw, dtype=np.float64)
    if not feasible.any():
        return out
    values = raw[feasible]
    low, high = float(values.min()), float(values.max())
    if high - low <= 1e-12:
        out[feasible] = 100.0
    else:
        out[feasible] = (values - low) * (100.0 / (high - low))
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class FilterVerdict:
    """One filter's verdict in one decision."""

    plugin: str
    rejected: int
    reason: str
    unresolvable: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoreVerdict:
    """One score plugin's verdict on the chosen node (and the best it gave any node)."""

    plugin: str
    weight: float
    normalised: float
    raw: float
    best_raw: float


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeTable:
    """Every plugin's verdict on every node, kept only when a decision is asked to explain."""

    names: tuple[str, ...]
    filters: dict[str, npt.NDArray[np.bool_]] = field(default_factory=dict)
    filter_reasons: dict[str, str] = field(default_factory=dict)
    scores: dict[str, FloatArray] = field(default_factory=dict)
    raw: dict[str, FloatArray] = field(default_factory=dict)
    """Each score plugin's raw value (e.g. FGD: minus the fragmentation increase, milli-GPU)."""
    weights: dict[str, float] = field(default_factory=dict)
    total: FloatArray | None = None

    def why(self, node: str) -> list[str]:
        """Each plugin's verdict on one node, as lines a person can read."""
        if node not in self.names:
            return [f"{node}: not a node of this cluster"]
        i = self.names.index(node)
        lines = []
        for plugin, passed in self.filters.items():
            verdict = "pass" if passed[i] else f"FAIL ({self.filter_reasons[plugin]})"
            lines.append(f"filter {plugin}: {verdict}")
        for plugin, values in self.scores.items():
            lines.append(f"score {plugin}: {values[i]:.1f}/100 x weight {self.weights[plugin]:g}")
        if self.total is not None:
            lines.append(f"total: {self.total[i]:.1f}")
        return lines


@dataclass(frozen=True, slots=True, kw_only=True)
class Placement:
    """A pod placed: where, on which GPUs, and every plugin's verdict."""

    pod: str
    node: str
    allocation: state.Allocation
    profile: str
    feasible: int
    nodes: int
    filters: tuple[FilterVerdict, ...] = ()
    scores: tuple[ScoreVerdict, ...] = ()
    picker: str = ""
    table: NodeTable | None = None

    @property
    def placed(self) -> bool:
        return True

    def reason(self) -> str:
        """Why this node: the weighted plugins' scores of the winner, in one line."""
        parts = [f"{s.plugin} {s.normalised:.0f}/100 (x{s.weight:g})" for s in self.scores]
        gpus = ""
        if self.allocation.gpu_indices:
            gpus = f" gpus {list(self.allocation.gpu_indices)}"
        elif self.allocation.mig_profile:
            gpus = f" gpu {self.allocation.mig_gpu} mig-{self.allocation.mig_profile}"
        ranked = "; ".join(parts) or "no score plugins"
        return (
            f"{self.profile}: {self.feasible}/{self.nodes} nodes feasible, chose {self.node}{gpus}"
            f" by {ranked}; GPU by {self.picker}"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Unschedulable:
    """A pod that fits nowhere now: the status and each filter's count of rejected nodes."""

    pod: str
    status: Status
    profile: str
    nodes: int
    filters: tuple[FilterVerdict, ...] = ()
    table: NodeTable | None = None

    @property
    def placed(self) -> bool:
        return False

    def reason(self) -> str:
        """Like kube-scheduler: `0/1213 nodes are available: 900 Insufficient cpu, ...`."""
        parts = [f"{f.rejected} {f.reason}" for f in self.filters if f.rejected]
        return f"0/{self.nodes} nodes are available: " + (", ".join(parts) or "no nodes") + "."


Decision = Placement | Unschedulable
