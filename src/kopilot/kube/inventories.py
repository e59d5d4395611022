"""The nodes and pods of a live cluster, written as the replay exporter's cluster-file schema.

`kopilot replay-exporter --kubeconfig` replays the cluster that is really there: this reads every
node and every pod bound to a node (paginated LISTs, raw JSON) and returns plain data in the form
of a cluster file (sim/clusterfiles.py), which the replay validates like a file:

- a node: its capacity (cpu, memory, pods, `nvidia.com/gpu`, `nvidia.com/mig-*`) and its
  `nvidia.com/gpu.product` label as the GPU model;
- a pod: what the scheduler counts as its requests (kube/converting.py), the sum of its
  containers' memory limits (the request when a container has none; 2 GiB when neither is given),
  its controlling owner, its first container's name, the GPUs its `kopilot.io/gpu-indices`
  annotation names (else the node's next free ones; none when the node's GPUs are all taken);
- a pod serves requests when it asks for a GPU or a MIG device, at `kopilot.io/replay-peak-rps`
  (default 10) requests a second at peak demand; that annotation set to 0 turns it off, and set on
  a CPU pod turns it on. Pods that finished (Succeeded, Failed) are left out.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

from kopilot.kube import apis, converting, objects, quantities
from kopilot.model import resources

PEAK_RPS_ANNOTATION = "kopilot.io/replay-peak-rps"
DEFAULT_PEAK_RPS = 10.0
DEFAULT_MEMORY_LIMIT = "2Gi"


def describe(api: apis.Api, *, page_size: int = 500) -> dict[str, list[dict[str, Any]]]:
    """The cluster as a cluster file's `nodes` and `pods`."""
    nodes = [
        _node(cast(objects.Node, raw)) for raw in _list(api, "/api/v1/nodes", "nodes", page_size)
    ]
    free = {n["name"]: list(range(int(n["gpus"]))) for n in nodes}
    pods: list[dict[str, Any]] = []
    for raw in _list(api, "/api/v1/pods", "pods", page_size):
        phase = (raw.get("status") or {}).get("phase", "Pending")
        node = (raw.get("spec") or {}).get("nodeName")
        if node not in free or phase in ("Succeeded", "Failed"):
            continue
        pods.append(_pod(cast(objects.Pod, raw), free[node]))
    return {"nodes": nodes, "pods": pods}


def _list(api: apis.Api, path: str, kind: str, page_size: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        query: dict[str, str | int | bool] = {"limit": page_size}
        if token:
            query["continue"] = token
        body = api.call("GET", path, f"list {kind}", query=query)
        items.extend(body.get("items") or [])
        token = (body.get("metadata") or {}).get("continue") or None
        if not token:
            return items


def _node(raw: objects.Node) -> dict[str, Any]:
    meta = raw.get("metadata", {})
    capacity = raw.get("status", {}).get("capacity") or {}
    where = f"node {meta.get('name', '')}"
    mig = {
        k.removeprefix(resources.MIG_RESOURCE_PREFIX): quantities.count(v, f"{where} {k}")
        for k, v in capacity.items()
        if k.startswith(resources.MIG_RESOURCE_PREFIX) and v not in ("0", "")
    }
    gpu_model = (meta.get("labels") or {}).get(converting.GPU_PRODUCT_LABEL)
    return {
        "name": meta.get("name", ""),
        "cpu": capacity.get("cpu", "0"),
        "memory": capacity.get("memory", "0"),
        "pods": max(1, quantities.count(capacity.get("pods", "110"), f"{where} pods")),
        "gpus": quantities.count(capacity.get(resources.RESOURCE_GPU, "0"), where),
        "mig": {k: v for k, v in mig.items() if v > 0},
        **({"gpu_model": gpu_model} if gpu_model else {}),
    }


def _pod(raw: objects.Pod, free: list[int]) -> dict[str, Any]:
    meta = raw.get("metadata", {})
    spec = raw.get("spec", {})
    pod = converting.pod_of(raw)
    request = pod.request
    requests: dict[str, str | int] = {
        "cpu": f"{request.cpu_milli}m",
        "memory": f"{request.memory_mib}Mi",
    }
    if request.gpus:
        requests[resources.RESOURCE_GPU] = request.gpus
    for profile, count in request.mig.items():
        requests[f"{resources.MIG_RESOURCE_PREFIX}{profile}"] = count
    containers = spec.get("containers") or []
    limit = Decimal(0)
    for c in containers:
        res = c.get("resources") or {}
        text = (res.get("limits") or {}).get("memory") or (res.get("requests") or {}).get("memory")
        limit += quantities.parse(text, f"pod {pod.namespace}/{pod.name} memory") if text else 0
    memory_limit = f"{int(limit)}" if limit > 0 else DEFAULT_MEMORY_LIMIT
    if request.memory_mib == 0:
        del requests["memory"]
    wanted = [g for g in pod.gpu_indices if g in free] if pod.gpu_indices else free[: request.gpus]
    if len(wanted) < request.gpus:
        wanted = []  # GPUs shared or not known: the pod gets no dcgm series of its own
    for g in wanted:
        free.remove(g)
    out: dict[str, Any] = {
        "name": pod.name,
        "namespace": pod.namespace,
        "node": pod.node,
        "container": containers[0].get("name", "main") if containers else "main",
        "requests": requests,
        "limits": {"memory": memory_limit},
        "gpus": wanted,
    }
    owner = next((r for r in meta.get("ownerReferences") or [] if r.get("controller")), None)
    if owner is not None:
        out["owner"] = {"kind": owner.get("kind", ""), "name": owner.get("name", "")}
    if pod.service is not None:
        out["service"] = pod.service
    peak = _peak_rps(meta.get("annotations") or {}, request)
    if peak > 0:
        out["serving"] = {"peak_rps": peak}
    return out


def _peak_rps(annotations: dict[str, str], request: resources.Resources) -> float:
    text = annotations.get(PEAK_RPS_ANNOTATION)
    if text is None:
        return DEFAULT_PEAK_RPS if request.gpus or request.mig else 0.0
    try:
        value = float(text)
    except ValueError:
        return 0.0
    return value if 0 < value <= 1e6 else 0.0


__all__ = ["DEFAULT_PEAK_RPS", "PEAK_RPS_ANNOTATION", "describe"]
