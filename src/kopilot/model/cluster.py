"""Nodes, GPUs, pods and model services, and the snapshot that ties them together.

A snapshot is taken at the start of a cycle and does not change under the policies' feet.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from kopilot.model import gpus, resources, series


class PodPhase(enum.StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class Gpu:
    """One physical GPU on a node. `used_milli` counts whole and time-sliced allocations."""

    index: int
    model: str
    used_milli: int = 0
    mig: gpus.MigLayout | None = None
    healthy: bool = True

    @property
    def free_milli(self) -> int:
        return resources.GPU_MILLI - self.used_milli


@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    """A node: its allocatable CPU and memory, its GPUs, and whether pods may land on it."""

    name: str
    cpu_milli: int
    memory_mib: int
    gpus: tuple[Gpu, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    unschedulable: bool = False
    ready: bool = True

    @property
    def gpu_model(self) -> str | None:
        return self.gpus[0].model if self.gpus else None


ANNOTATION_GPU_MODELS = "kopilot.io/gpu-models"
"""On a pod: the GPU models it may run on, `V100M16|V100M32`."""
ANNOTATION_GPU_INDICES = "kopilot.io/gpu-indices"
"""On a pod: the GPUs of its node it was given, `0,3` (written with its Binding)."""


def gpu_indices_of(annotations: Mapping[str, str]) -> tuple[int, ...]:
    """The GPU indices in a pod's annotations; () when absent, garbled entries skipped."""
    text = annotations.get(ANNOTATION_GPU_INDICES, "")
    return tuple(int(i) for i in text.split(",") if i.strip().isdigit())


@dataclass(frozen=True, slots=True, kw_only=True)
class Pod:
    """A pod and its request; `node` is None while it is pending."""

    name: str
    namespace: str = "default"
    request: resources.Resources = field(default_factory=resources.Resources)
    gpu_models: frozenset[str] = frozenset()
    """Allowed GPU models (empty = any), like the trace's `gpu_spec` `V100M16|V100M32`."""
    node: str | None = None
    gpu_indices: tuple[int, ...] = ()
    phase: PodPhase = PodPhase.PENDING
    service: str | None = None
    """The model service (namespace/name) this pod is a replica of, if any."""
    gang: str | None = None
    gang_size: int = 0
    created_at: float = 0.0
    labels: Mapping[str, str] = field(default_factory=dict)
    memory_limit_mib: float = 0.0
    """The pod's memory limit (the sum over its containers; 0 when any container has none):
    past it the kernel OOM-kills the pod."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelService:
    """A scalable model-serving workload (a Deployment kopilot manages).

    `capacity_rps` is what one ready replica serves within the latency SLO; `cold_start_s` is how
    long a new replica takes from creation to ready (image pull + model load + warm-up).
    """

    name: str
    namespace: str = "default"
    replicas: int
    """Desired replicas (what the last scale set)."""
    ready_replicas: int
    capacity_rps: float
    cold_start_s: float
    min_replicas: int = 0
    max_replicas: int = 100
    request: resources.Resources = field(default_factory=resources.Resources)
    """What one replica asks for (e.g. one GPU)."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


METRICS = "metrics"
"""The signal source `ClusterSnapshot.metrics` comes from (Prometheus, live), as `blind` names it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterSnapshot:
    """What a policy may know at one instant: the cluster and the recent metric history."""

    time: float
    nodes: tuple[Node, ...] = ()
    pods: tuple[Pod, ...] = ()
    services: tuple[ModelService, ...] = ()
    demand: Mapping[str, series.Series] = field(default_factory=dict)
    """Per service key: observed request rate (req/s) up to `time`."""
    metrics: Mapping[str, series.Series] = field(default_factory=dict)
    """Any other named stream (`<kind>/<object>/<metric>`), for the health and cost policies."""
    blind: Mapping[str, str] = field(default_factory=dict)
    """Signal sources that cannot be trusted this cycle, and why (`metrics`: Prometheus
    unreachable, stale or its clock skewed). A family that needs one does not act on this
    snapshot; the loop records the reason instead."""

    def service(self, key: str) -> ModelService | None:
        for s in self.services:
            if s.key == key:
                return s
        return None
