"""Cluster descriptions for the replay exporter: the nodes and pods whose metrics it serves.

A small YAML (or JSON) file, checked with pydantic; a bad file is one line naming the field:

```yaml
nodes:
  - name: gpu-node-0
    cpu: "64"                     # Kubernetes quantities
    memory: 256Gi
    gpus: 4                       # whole GPUs (nvidia.com/gpu)
    gpu_model: NVIDIA A100-SXM4-80GB
    mig: {1g.10gb: 7}             # MIG devices the node advertises (nvidia.com/mig-1g.10gb)
pods:
  - name: detector-6d5f7c9b8-a1b2c
    namespace: ml
    node: gpu-node-0
    owner: {kind: ReplicaSet, name: detector-6d5f7c9b8}
    container: server             # default: main
    requests: {cpu: "4", memory: 8Gi, nvidia.com/gpu: 1}
    limits: {memory: 8Gi}         # a missing limit is the request (memory is needed)
    gpus: [0]                     # default: the node's next free GPUs, as many as requested
    serving: {peak_rps: 10, latency_ms: 80}   # omit for a pod that serves no requests
    service: ml/detector          # default: the Deployment name behind a ReplicaSet owner
```
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import pydantic

from kopilot.kits import yamlfiles
from kopilot.model import errors
from kopilot.scheduling import quantities

GPU_RESOURCE = "nvidia.com/gpu"
_MIG_PREFIX = "nvidia.com/mig-"
_NAME = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"


# -- the values the replay uses -------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class GpuSpec:
    index: int
    uuid: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSpec:
    name: str
    capacity: Mapping[str, float]
    """Kubernetes resource name -> amount in kube-state-metrics units (cores, bytes, devices)."""
    gpu_model: str
    gpus: tuple[GpuSpec, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Serving:
    peak_rps: float
    latency_ms: float


@dataclass(frozen=True, slots=True, kw_only=True)
class PodSpec:
    namespace: str
    name: str
    node: str
    container: str
    owner_kind: str
    owner_name: str
    service: str
    requests: Mapping[str, float]
    limits: Mapping[str, float]
    gpus: tuple[int, ...]
    serving: Serving | None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def memory_limit_bytes(self) -> float:
        return self.limits["memory"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterSpec:
    nodes: tuple[NodeSpec, ...]
    pods: tuple[PodSpec, ...]

    def node(self, name: str) -> NodeSpec | None:
        return next((n for n in self.nodes if n.name == name), None)

    def pod(self, key: str) -> PodSpec | None:
        return next((p for p in self.pods if p.key == key), None)

    @property
    def services(self) -> tuple[str, ...]:
        return tuple(sorted({p.service for p in self.pods if p.serving is not None}))


def ksm_resource(name: str) -> tuple[str, str]:
    """kube-state-metrics' `resource` and `unit` labels for a Kubernetes resource name."""
    unit = {"cpu": "core", "memory": "byte"}.get(name, "integer")
    return re.sub(r"[./-]", "_", name), unit


# -- the file's schema ----------------------------------------------------------------------
Quantity = str | int | float


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class _Node(_Strict):
    name: str = pydantic.Field(pattern=_NAME, max_length=253)
    cpu: Quantity
    memory: Quantity
    gpus: int = pydantic.Field(default=0, ge=0, le=64)
    gpu_model: str = pydantic.Field(default="NVIDIA A100-SXM4-80GB", min_length=1)
    mig: dict[str, int] = pydantic.Field(default_factory=dict)
    pods: int = pydantic.Field(default=110, ge=1)


class _Owner(_Strict):
    kind: str = pydantic.Field(min_length=1)
    name: str = pydantic.Field(pattern=_NAME)


class _Serving(_Strict):
    peak_rps: float = pydantic.Field(default=10.0, gt=0, le=1e6)
    latency_ms: float = pydantic.Field(default=80.0, gt=0, le=600_000)


class _Pod(_Strict):
    name: str = pydantic.Field(pattern=_NAME, max_length=253)
    namespace: str = pydantic.Field(default="default", pattern=_NAME, max_length=63)
    node: str
    owner: _Owner | None = None
    container: str = pydantic.Field(default="main", pattern=_NAME)
    requests: dict[str, Quantity] = pydantic.Field(default_factory=dict)
    limits: dict[str, Quantity] = pydantic.Field(default_factory=dict)
    gpus: list[int] | None = None
    serving: _Serving | None = None
    service: str | None = pydantic.Field(default=None, pattern=r"^[^/\s]+/[^/\s]+$")


class _Cluster(_Strict):
    nodes: list[_Node] = pydantic.Field(min_length=1, max_length=10_000)
    pods: list[_Pod] = pydantic.Field(default_factory=list, max_length=100_000)

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [n.name for n in self.nodes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"node names must be unique; repeated: {', '.join(dupes)}")
        pods = [f"{p.namespace}/{p.name}" for p in self.pods]
        dupes = sorted({p for p in pods if pods.count(p) > 1})
        if dupes:
            raise ValueError(
                f"pod names must be unique per namespace; repeated: {', '.join(dupes)}"
            )
        return self


def _amounts(raw: Mapping[str, Quantity], where: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, value in raw.items():
        field = f"{where}.{name}"
        if name in {"cpu", "memory"}:
            out[name] = float(quantities.parse(value, field=field))
        elif name == GPU_RESOURCE or name.startswith(_MIG_PREFIX):
            out[name] = float(quantities.count(value, field=field))
        else:
            raise errors.InvalidInputError(
                f"{field}: unknown resource; use cpu, memory, {GPU_RESOURCE} or "
                f"{_MIG_PREFIX}<profile>"
            )
    return out


def _uuid(node: str, index: int) -> str:
    h = hashlib.sha256(f"{node}/{index}".encode()).hexdigest()
    return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _service(pod: _Pod) -> str:
    if pod.service is not None:
        return pod.service
    if pod.owner is None:
        return f"{pod.namespace}/{pod.name}"
    if pod.owner.kind == "ReplicaSet" and "-" in pod.owner.name:
        return f"{pod.namespace}/{pod.owner.name.rsplit('-', 1)[0]}"
    return f"{pod.namespace}/{pod.owner.name}"


def _convert(c: _Cluster) -> ClusterSpec:
    nodes: list[NodeSpec] = []
    for i, n in enumerate(c.nodes):
        capacity = _amounts({"cpu": n.cpu, "memory": n.memory}, f"nodes.{i}")
        capacity["pods"] = float(n.pods)
        if n.gpus:
            capacity[GPU_RESOURCE] = float(n.gpus)
        for profile, count in n.mig.items():
            if not re.fullmatch(r"\d+g\.\d+gb(\+me)?", profile) or count < 1:
                raise errors.InvalidInputError(
                    f"nodes.{i}.mig: {profile!r}: {count} is not a MIG profile (e.g. 1g.10gb) "
                    "with a positive count"
                )
            capacity[_MIG_PREFIX + profile] = float(count)
        devices = tuple(GpuSpec(index=g, uuid=_uuid(n.name, g)) for g in range(n.gpus))
        nodes.append(NodeSpec(name=n.name, capacity=capacity, gpu_model=n.gpu_model, gpus=devices))
    by_name = {n.name: n for n in nodes}
    taken: dict[str, set[int]] = {n.name: set() for n in nodes}
    pods: list[PodSpec] = []
    for i, p in enumerate(c.pods):
        where = f"pods.{i} ({p.namespace}/{p.name})"
        node = by_name.get(p.node)
        if node is None:
            raise errors.InvalidInputError(
                f"{where}.node: {p.node!r} is not one of the file's nodes ({', '.join(by_name)})"
            )
        requests = _amounts(p.requests, f"{where}.requests")
        limits = {**requests, **_amounts(p.limits, f"{where}.limits")}
        if "memory" not in limits:
            raise errors.InvalidInputError(
                f"{where}: give requests.memory or limits.memory (the replay needs a memory size)"
            )
        for name in ("cpu", "memory"):
            if name in requests and limits[name] < requests[name]:
                raise errors.InvalidInputError(f"{where}.limits.{name}: below the request")
        wanted = int(requests.get(GPU_RESOURCE, limits.get(GPU_RESOURCE, 0)))
        gpus: tuple[int, ...]
        if p.gpus is None:
            free = [g.index for g in node.gpus if g.index not in taken[node.name]]
            if len(free) < wanted:
                raise errors.InvalidInputError(
                    f"{where}: asks for {wanted} GPU(s) but {node.name} has {len(free)} free "
                    f"of {len(node.gpus)}; give `gpus:` to share one"
                )
            gpus = tuple(free[:wanted])
        else:
            gpus = tuple(p.gpus)
            bad = [g for g in gpus if not 0 <= g < len(node.gpus)]
            if bad or len(set(gpus)) != len(gpus):
                raise errors.InvalidInputError(
                    f"{where}.gpus: {list(gpus)} must be distinct indices below "
                    f"{len(node.gpus)} ({node.name} has {len(node.gpus)} GPUs)"
                )
        taken[node.name].update(gpus)
        pods.append(
            PodSpec(
                namespace=p.namespace,
                name=p.name,
                node=p.node,
                container=p.container,
                owner_kind=p.owner.kind if p.owner else "<none>",
                owner_name=p.owner.name if p.owner else "<none>",
                service=_service(p),
                requests=requests,
                limits=limits,
                gpus=gpus,
                serving=(
                    Serving(peak_rps=p.serving.peak_rps, latency_ms=p.serving.latency_ms)
                    if p.serving is not None
                    else None
                ),
            )
        )
    return ClusterSpec(nodes=tuple(nodes), pods=tuple(pods))


def _checked(raw: _Cluster, source: str) -> ClusterSpec:
    try:
        return _convert(raw)
    except errors.InvalidInputError as e:
        raise errors.InvalidInputError(f"cluster file {source}: {e}") from e


def parse(text: str, *, source: str) -> ClusterSpec:
    """A cluster description from YAML or JSON text; InvalidInputError names what is wrong."""
    return _checked(yamlfiles.parse(text, _Cluster, source=source, what="cluster file"), source)


def from_mapping(raw: Mapping[str, object], *, source: str) -> ClusterSpec:
    """A cluster description already parsed into plain data (say, read from an API server)."""
    try:
        checked = _Cluster.model_validate(raw)
    except pydantic.ValidationError as e:
        raise errors.InvalidInputError(f"cluster file {source}: {yamlfiles.field_errors(e)}") from e
    return _checked(checked, source)


def load(path: Path) -> ClusterSpec:
    """Read a cluster description file."""
    return _checked(yamlfiles.load(path, _Cluster, what="cluster file"), str(path))


__all__ = [
    "ClusterSpec",
    "GpuSpec",
    "NodeSpec",
    "PodSpec",
    "Serving",
    "from_mapping",
    "ksm_resource",
    "load",
    "parse",
]
