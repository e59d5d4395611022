"""Raw Kubernetes JSON -> kopilot.model objects.

- A node's GPUs are its allocatable `nvidia.com/gpu`, of the model in the GPU feature discovery
  label `nvidia.com/gpu.product`; how much of each is in use is added at snapshot time from the
  pods bound to the node (`with_gpu_usage`): the GPUs a pod's `kopilot.io/gpu-indices` names
  (written when kopilot bound it), else whole GPUs in index order and shares (`kopilot.io/gpu-milli`)
  on the first GPU they fit, since the API does not say which device the device plugin handed out.
  MIG slices are counted in pod requests but not mapped to a node's GPUs (no MIG layout is read).
- A node is ready when its `Ready` condition is `True` (what `kubectl get nodes` shows).
- A pod's request is what the scheduler counts: the sum over its containers, or the largest init
  container if that is more, per resource.
- A pod's service is its controlling Deployment (through its ReplicaSet, whose name is the
  Deployment's plus `-<pod-template-hash>`) or StatefulSet.
"""

from __future__ import annotations

import collections
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from kopilot.kube import notes, objects, quantities
from kopilot.model import cluster, resources

GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_MILLI_RESOURCE = "kopilot.io/gpu-milli"
"""A share of one GPU (1..999), as kopilot's scheduler extender advertises it."""
"""Allowed GPU models of a pod, `|`-separated (`V100M16|V100M32`)."""
UNKNOWN_GPU = "unknown"


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeInfo:
    """A node as read from the API, before GPU usage is known."""

    name: str
    cpu_milli: int
    memory_mib: int
    gpu_count: int
    gpu_model: str
    labels: Mapping[str, str] = field(default_factory=dict)
    unschedulable: bool = False
    ready: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadRef:
    """Where a managed workload lives, and the settings its annotations give."""

    kind: str
    """`Deployment` or `StatefulSet`."""
    namespace: str
    name: str
    settings: notes.ServiceSettings

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


WORKLOAD_KINDS = ("Deployment", "StatefulSet")


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadInfo:
    """A Deployment or StatefulSet as read from the API, managed or not: what a ModelService
    that targets it needs, and what its own `kopilot.io/` annotations say."""

    kind: str
    namespace: str
    name: str
    replicas: int
    ready_replicas: int
    request: resources.Resources
    """What one replica asks for (its pod template)."""
    annotated: WorkloadRef | None = None
    """Its settings when annotated `kopilot.io/managed: "true"`."""
    problem: str | None = None
    """Why its annotations cannot be read (it is then not managed through them)."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def workload_info(raw: objects.Workload) -> WorkloadInfo:
    """Any workload; bad `kopilot.io/` annotations are kept as its `problem`, not raised."""
    meta = raw.get("metadata", {})
    kind = raw.get("kind") or "Deployment"
    annotated, problem = None, None
    try:
        annotated = workload_ref(raw)
    except notes.AnnotationError as e:
        problem = str(e)
    namespace, name = meta.get("namespace", "default"), meta.get("name", "")
    spec = raw.get("spec", {})
    template = spec.get("template", {}).get("spec", {})
    return WorkloadInfo(
        kind=kind,
        namespace=namespace,
        name=name,
        replicas=int(spec.get("replicas", 1)),
        ready_replicas=int(raw.get("status", {}).get("readyReplicas", 0)),
        request=request_of(template, f"{kind} {namespace}/{name} pod template"),
        annotated=annotated,
        problem=problem,
    )


def service_from(info: WorkloadInfo, settings: notes.ServiceSettings) -> cluster.ModelService:
    """The model service a workload is under these settings (annotations or a ModelService)."""
    return cluster.ModelService(
        name=info.name,
        namespace=info.namespace,
        replicas=info.replicas,
        ready_replicas=info.ready_replicas,
        capacity_rps=settings.capacity_rps,
        cold_start_s=settings.cold_start_s,
        min_replicas=settings.min_replicas,
        max_replicas=settings.max_replicas,
        request=info.request,
    )


def timestamp(text: str | None) -> float:
    """An RFC 3339 time from the API as unix seconds (0.0 when absent)."""
    if not text:
        return 0.0
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def rfc3339(t: float, *, micro: bool = False) -> str:
    """Unix seconds as the API writes times (`MicroTime` with `micro=True`)."""
    when = dt.datetime.fromtimestamp(t, tz=dt.UTC)
    if micro:
        return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def node_info(raw: objects.Node) -> NodeInfo:
    meta = raw.get("metadata", {})
    name = meta.get("name", "")
    status = raw.get("status", {})
    alloc = status.get("allocatable") or status.get("capacity") or {}
    where = f"node {name}"
    labels = dict(meta.get("labels") or {})
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    return NodeInfo(
        name=name,
        cpu_milli=quantities.cpu_milli(alloc.get("cpu", "0"), f"{where} allocatable cpu"),
        memory_mib=quantities.memory_mib(alloc.get("memory", "0"), f"{where} allocatable memory"),
        gpu_count=quantities.count(
            alloc.get(resources.RESOURCE_GPU, "0"), f"{where} allocatable {resources.RESOURCE_GPU}"
        ),
        gpu_model=labels.get(GPU_PRODUCT_LABEL, UNKNOWN_GPU),
        labels=labels,
        unschedulable=bool(raw.get("spec", {}).get("unschedulable", False)),
        ready=ready,
    )


def request_of(spec: objects.PodSpec, where: str) -> resources.Resources:
    """What the scheduler counts for a pod: max(sum of containers, largest init container)."""
    total = _requests(spec.get("containers") or [], where)
    for init in _each_requests(spec.get("initContainers") or [], where):
        for key, value in init.items():
            total[key] = max(total.get(key, 0), value)
    mig = {
        k.removeprefix(resources.MIG_RESOURCE_PREFIX): v
        for k, v in total.items()
        if k.startswith(resources.MIG_RESOURCE_PREFIX) and v
    }
    return resources.Resources(
        cpu_milli=total.get("cpu", 0),
        memory_mib=total.get("memory", 0),
        gpus=total.get(resources.RESOURCE_GPU, 0),
        gpu_milli=total.get(GPU_MILLI_RESOURCE, 0),
        mig=mig,
    )


def service_of_pod(meta: objects.ObjectMeta) -> str | None:
    """`namespace/name` of the Deployment or StatefulSet that controls the pod, if any."""
    namespace = meta.get("namespace", "default")
    labels = meta.get("labels") or {}
    for ref in meta.get("ownerReferences") or []:
        if not ref.get("controller"):
            continue
        kind, name = ref.get("kind", ""), ref.get("name", "")
        if kind == "StatefulSet":
            return f"{namespace}/{name}"
        if kind == "ReplicaSet":
            hash_ = labels.get("pod-template-hash")
            if hash_ and name.endswith(f"-{hash_}"):
                return f"{namespace}/{name.removesuffix(f'-{hash_}')}"
            return None
    return None


def pod_of(raw: objects.Pod) -> cluster.Pod:
    meta = raw.get("metadata", {})
    spec = raw.get("spec", {})
    namespace = meta.get("namespace", "default")
    name = meta.get("name", "")
    phase_text = raw.get("status", {}).get("phase", "Pending")
    try:
        phase = cluster.PodPhase(phase_text)
    except ValueError:
        phase = cluster.PodPhase.PENDING  # "Unknown": the node stopped reporting
    written = meta.get("annotations") or {}
    models = written.get(cluster.ANNOTATION_GPU_MODELS, "")
    return cluster.Pod(
        name=name,
        namespace=namespace,
        request=request_of(spec, f"pod {namespace}/{name}"),
        gpu_models=frozenset(m.strip() for m in models.split("|") if m.strip()),
        node=spec.get("nodeName") or None,
        gpu_indices=cluster.gpu_indices_of(written),
        phase=phase,
        service=service_of_pod(meta),
        created_at=timestamp(meta.get("creationTimestamp")),
        labels=dict(meta.get("labels") or {}),
        memory_limit_mib=memory_limit_of(spec, f"pod {namespace}/{name}"),
    )


def memory_limit_of(spec: objects.PodSpec, where: str) -> float:
    """The pod's memory limit in MiB: the sum of its containers' limits, 0 when one has none
    (then nothing caps the pod but the node)."""
    total = 0
    for c in spec.get("containers") or []:
        text = ((c.get("resources") or {}).get("limits") or {}).get("memory")
        if text is None:
            return 0.0
        total += quantities.memory_mib(text, f"{where} container {c.get('name', '?')} memory")
    return float(total)


def workload_ref(raw: objects.Workload) -> WorkloadRef | None:
    """The workload's settings if kopilot manages it, None if not; bad annotations raise
    `notes.AnnotationError` naming the workload."""
    meta = raw.get("metadata", {})
    written = meta.get("annotations") or {}
    if not notes.is_managed(written):
        return None
    kind = raw.get("kind") or "Deployment"
    namespace = meta.get("namespace", "default")
    name = meta.get("name", "")
    settings = notes.service_settings(written, f"{kind} {namespace}/{name}")
    return WorkloadRef(kind=kind, namespace=namespace, name=name, settings=settings)


def service_of(raw: objects.Workload, ref: WorkloadRef) -> cluster.ModelService:
    spec = raw.get("spec", {})
    status = raw.get("status", {})
    template = spec.get("template", {}).get("spec", {})
    s = ref.settings
    return cluster.ModelService(
        name=ref.name,
        namespace=ref.namespace,
        replicas=int(spec.get("replicas", 1)),
        ready_replicas=int(status.get("readyReplicas", 0)),
        capacity_rps=s.capacity_rps,
        cold_start_s=s.cold_start_s,
        min_replicas=s.min_replicas,
        max_replicas=s.max_replicas,
        request=request_of(template, f"{ref.kind} {ref.key} pod template"),
    )


def with_gpu_usage(infos: Iterable[NodeInfo], pods: Iterable[cluster.Pod]) -> list[cluster.Node]:
    """Nodes with their GPUs, each GPU's `used_milli` from the running and bound pods on it."""
    asked: dict[str, list[cluster.Pod]] = collections.defaultdict(list)
    for pod in pods:
        live = pod.phase in (cluster.PodPhase.PENDING, cluster.PodPhase.RUNNING)
        if pod.node and live and (pod.request.gpus or pod.request.gpu_milli):
            asked[pod.node].append(pod)
    out: list[cluster.Node] = []
    for info in infos:
        used = [0] * info.gpu_count
        for pod in asked.get(info.name, ()):
            share = pod.request.gpu_milli
            if share:
                fits = [i for i in range(info.gpu_count) if used[i] + share <= resources.GPU_MILLI]
                hinted = [i for i in pod.gpu_indices if i in fits]
                for i in (hinted or fits)[:1]:
                    used[i] += share
                continue
            want = pod.request.gpus
            chosen = [i for i in pod.gpu_indices if 0 <= i < info.gpu_count]
            if len(chosen) != want:
                chosen = [i for i in range(info.gpu_count) if used[i] == 0][:want]
            for i in chosen:
                used[i] = resources.GPU_MILLI
        out.append(
            cluster.Node(
                name=info.name,
                cpu_milli=info.cpu_milli,
                memory_mib=info.memory_mib,
                gpus=tuple(
                    cluster.Gpu(index=i, model=info.gpu_model, used_milli=used[i])
                    for i in range(info.gpu_count)
                ),
                labels=info.labels,
                unschedulable=info.unschedulable,
                ready=info.ready,
            )
        )
    return out


def _each_requests(containers: list[objects.Container], where: str) -> Iterable[dict[str, int]]:
    for c in containers:
        res = c.get("resources") or {}
        # Like the API server: requests default to limits for resources given only as limits.
        merged = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        here = f"{where} container {c.get('name', '?')}"
        parsed: dict[str, int] = {}
        for key, text in merged.items():
            if key == "cpu":
                parsed[key] = quantities.cpu_milli(text, f"{here} cpu")
            elif key == "memory":
                parsed[key] = quantities.memory_mib(text, f"{here} memory")
            elif key in (resources.RESOURCE_GPU, GPU_MILLI_RESOURCE) or key.startswith(
                resources.MIG_RESOURCE_PREFIX
            ):
                parsed[key] = quantities.count(text, f"{here} {key}")
        yield parsed


def _requests(containers: list[objects.Container], where: str) -> dict[str, int]:
    total: dict[str, int] = collections.defaultdict(int)
    for parsed in _each_requests(containers, where):
        for key, value in parsed.items():
            total[key] += value
    return dict(total)
