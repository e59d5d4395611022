"""Fetch what the cost policies need from Prometheus, with the real metric names and labels:

| what | metric (exporter) |
|---|---|
| CPU used | `rate(container_cpu_usage_seconds_total[5m])` (cAdvisor, via the kubelet) |
| memory used | `container_memory_working_set_bytes` (cAdvisor) |
| requests | `kube_pod_container_resource_requests{resource="cpu"/"memory"/"nvidia_com_gpu"/"nvidia_com_mig_*"}` (kube-state-metrics) |
| owner, node, labels | `kube_pod_owner`, `kube_pod_info`, `kube_pod_labels` (kube-state-metrics) |
| node capacity | `kube_node_status_capacity` (kube-state-metrics) |
| GPU memory used | `DCGM_FI_DEV_FB_USED` (MiB) (dcgm-exporter) |
| GPU busy | `DCGM_FI_DEV_GPU_UTIL` (0..100), else `DCGM_FI_PROF_GR_ENGINE_ACTIVE` (0..1) (dcgm-exporter; node label `Hostname` or `hostname`, pod labels `pod`/`namespace`/`container` or their `exported_` forms) |

Missing series are not invented: each gap becomes a note on the container (or a problem of the
whole fetch), and the policies then say "no recommendation" for it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from kopilot.cost import attribution, prices, usage
from kopilot.metrics import prometheus
from kopilot.model import errors, series

_SELECTOR_TERM = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|=|!=)?\s*([A-Za-z0-9_.-]*)\s*$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Fetched:
    """Everything `kopilot advise` reads from Prometheus for one window."""

    window: usage.Window
    containers: tuple[usage.ContainerUsage, ...] = ()
    nodes: tuple[attribution.NodeCapacity, ...] = ()
    problems: tuple[str, ...] = ()
    """Gaps that concern the whole fetch (a metric missing everywhere, Prometheus warnings)."""
    idle_node_gpus: tuple[tuple[str, str, series.Series], ...] = field(default=())
    """GPUs with a DCGM series but no pod label: (node, gpu, busy series)."""


def label_key(name: str) -> str:
    """kube-state-metrics' label name for a pod label (`app.kubernetes.io/name` ->
    `label_app_kubernetes_io_name`)."""
    return "label_" + re.sub(r"[^A-Za-z0-9_]", "_", name)


def parse_selector(selector: str) -> list[tuple[str, str, str]]:
    """`app=web,tier!=cache,gpu` -> [(key, op, value)]; op is '=', '!=' or 'exists'."""
    out: list[tuple[str, str, str]] = []
    for term in filter(None, (t.strip() for t in selector.split(","))):
        m = _SELECTOR_TERM.match(term)
        if not m:
            raise errors.InvalidInputError(
                f"--selector: cannot read {term!r}; use key=value, key!=value or key, "
                "separated by commas"
            )
        key, op, value = m.group(1), m.group(2), m.group(3)
        out.append((key, "exists" if op is None else ("!=" if op == "!=" else "="), value))
    return out


def matches(labels: Mapping[str, str], terms: Sequence[tuple[str, str, str]]) -> bool:
    for key, op, value in terms:
        have = labels.get(key)
        if (op == "exists" and have is None) or (op == "=" and have != value):
            return False
        if op == "!=" and have == value:
            return False
    return True


def workload_of(owner_kind: str, owner_name: str, pod: str) -> str:
    """A pod's workload: a ReplicaSet's Deployment (the name minus its pod-template hash), the
    owner otherwise, the pod itself when it has none."""
    if owner_kind == "ReplicaSet" and re.search(r"-[a-z0-9]{5,10}$", owner_name):
        return owner_name.rsplit("-", 1)[0]
    if owner_name and owner_name != "<none>":
        return owner_name
    return pod


def gpu_model_of(model_name: str) -> str | None:
    """dcgm-exporter's `modelName` (`NVIDIA A100-SXM4-80GB`) as a kopilot GPU model name."""
    name = model_name.upper()
    rules = (
        ("H100", "H100-80GB"),
        ("A100", "A100-80GB" if "80GB" in name else "A100-40GB"),
        ("V100", "V100M32" if "32GB" in name else "V100M16"),
        ("T4", "T4"),
        ("A10", "A10"),
        ("P100", "P100"),
    )
    for needle, model in rules:
        if needle in name:
            return model
    return model_name or None


def _first(labels: Mapping[str, str], *names: str) -> str | None:
    for n in names:
        if labels.get(n):
            return labels[n]
    return None


def fetch(
    client: prometheus.Client,
    window: usage.Window,
    *,
    namespace: str | None = None,
    selector: str | None = None,
) -> Fetched:
    """Read usage, requests, owners, labels, nodes and GPU busy for `window`."""
    terms = parse_selector(selector) if selector else []
    ns = f',namespace="{namespace}"' if namespace else ""
    span = f"{max(int(window.end - window.start), 60)}s"
    problems: list[str] = []

    def rng(q: str) -> prometheus.Result:
        r = client.query_range(q, start=window.start, end=window.end, step=window.step)
        problems.extend(r.warnings)
        problems.extend(r.notes)
        return r

    def last(q: str) -> prometheus.Result:
        r = client.query(f"last_over_time({q}[{span}])", time=window.end)
        problems.extend(r.warnings)
        return r

    cname = '{container!="",container!="POD"' + ns + "}"
    cpu = rng(f"rate(container_cpu_usage_seconds_total{cname}[5m])")
    mem = rng(f"container_memory_working_set_bytes{cname}")
    req_cpu = rng(f'kube_pod_container_resource_requests{{resource="cpu"{ns}}}')
    req_mem = rng(f'kube_pod_container_resource_requests{{resource="memory"{ns}}}')
    req_gpu = last(
        f'kube_pod_container_resource_requests{{resource=~"nvidia_com_gpu|nvidia_com_mig_.*"{ns}}}'
    )
    owners = last(f"kube_pod_owner{{{ns.lstrip(',')}}}")
    infos = last(f"kube_pod_info{{{ns.lstrip(',')}}}")
    pod_labels = last(f"kube_pod_labels{{{ns.lstrip(',')}}}")
    capacity = last("kube_node_status_capacity")
    gpu_fb = rng("DCGM_FI_DEV_FB_USED")
    gpu_util = rng("DCGM_FI_DEV_GPU_UTIL")
    gpu_scale = 100.0
    if not gpu_util.series:
        gpu_util = rng("DCGM_FI_PROF_GR_ENGINE_ACTIVE")
        gpu_scale = 1.0

    for name, result in (
        ("container_cpu_usage_seconds_total", cpu),
        ("container_memory_working_set_bytes", mem),
        ("kube_pod_container_resource_requests", req_cpu),
        ("kube_pod_owner", owners),
    ):
        if not result.series:
            problems.append(
                f"{name}: no series in the window{f' for namespace {namespace}' if namespace else ''}"
            )

    owner: dict[tuple[str, str], str] = {}
    for s in owners.series:
        key = (s.labels.get("namespace", ""), s.labels.get("pod", ""))
        owner[key] = workload_of(
            s.labels.get("owner_kind", ""), s.labels.get("owner_name", ""), key[1]
        )
    node_of = {
        (s.labels.get("namespace", ""), s.labels.get("pod", "")): s.labels.get("node", "")
        for s in infos.series
    }
    labels_of: dict[tuple[str, str], dict[str, str]] = {}
    for s in pod_labels.series:
        key = (s.labels.get("namespace", ""), s.labels.get("pod", ""))
        labels_of[key] = {
            k.removeprefix("label_"): v for k, v in s.labels.items() if k.startswith("label_")
        }
    wanted_pods: set[tuple[str, str]] | None = None
    if terms:
        sanitized = [(label_key(k).removeprefix("label_"), op, v) for k, op, v in terms]
        wanted_pods = {k for k, lab in labels_of.items() if matches(lab, sanitized)}
        if not wanted_pods:
            problems.append(f"no pod matches --selector {selector!r} (checked kube_pod_labels)")

    def ckey(labels: Mapping[str, str]) -> tuple[str, str, str]:
        return (labels.get("namespace", ""), labels.get("pod", ""), labels.get("container", ""))

    def by_container(result: prometheus.Result) -> dict[tuple[str, str, str], series.Series]:
        out: dict[tuple[str, str, str], series.Series] = {}
        for s in result.series:
            out[ckey(s.labels)] = s.samples
        return out

    cpu_by, mem_by = by_container(cpu), by_container(mem)
    rcpu_by, rmem_by = by_container(req_cpu), by_container(req_mem)
    gpus_by: dict[tuple[str, str, str], float] = defaultdict(float)
    for s in req_gpu.series:
        value = s.samples.last() or 0.0
        res = s.labels.get("resource", "")
        if res.startswith("nvidia_com_mig_"):
            profile = res.removeprefix("nvidia_com_mig_").replace("_", ".")
            try:
                gpus_by[ckey(s.labels)] += value * prices.mig_share(None, profile)
            except errors.InvalidInputError as e:
                problems.append(f"{'/'.join(ckey(s.labels))}: {e}")
        else:
            gpus_by[ckey(s.labels)] += value
    busy_parts: dict[tuple[str, str, str], list[series.Series]] = defaultdict(list)
    fb_parts: dict[tuple[str, str, str], list[series.Series]] = defaultdict(list)
    gpu_node: dict[tuple[str, str, str], str] = {}
    gpu_model: dict[tuple[str, str, str], str | None] = {}
    for s in gpu_fb.series:
        pod = _first(s.labels, "pod", "exported_pod")
        if pod:
            fkey = (
                _first(s.labels, "namespace", "exported_namespace") or "",
                pod,
                _first(s.labels, "container", "exported_container") or "",
            )
            fb_parts[fkey].append(series.Series.of(s.samples.times, s.samples.values * 1024.0**2))
    idle_node_gpus: list[tuple[str, str, series.Series]] = []
    for s in gpu_util.series:
        lab = s.labels
        host = _first(lab, "Hostname", "hostname", "node", "kubernetes_node") or ""
        pod = _first(lab, "pod", "exported_pod")
        scaled = series.Series.of(s.samples.times, s.samples.values / gpu_scale)
        if not pod:
            idle_node_gpus.append((host, _first(lab, "gpu", "UUID", "device") or "?", scaled))
            continue
        gkey = (
            _first(lab, "namespace", "exported_namespace") or "",
            pod,
            _first(lab, "container", "exported_container") or "",
        )
        if namespace and gkey[0] != namespace:
            continue
        busy_parts[gkey].append(scaled)
        gpu_node[gkey] = host
        gpu_model[gkey] = gpu_model_of(lab.get("modelName", ""))

    keys = set(cpu_by) | set(mem_by) | set(rcpu_by) | set(rmem_by) | set(gpus_by) | set(busy_parts)
    containers: list[usage.ContainerUsage] = []
    for ck in sorted(keys):
        pod_key = (ck[0], ck[1])
        if wanted_pods is not None and pod_key not in wanted_pods:
            continue
        notes: list[str] = []
        for what, table in (
            ("CPU usage", cpu_by),
            ("memory usage", mem_by),
            ("CPU request", rcpu_by),
            ("memory request", rmem_by),
        ):
            if ck not in table:
                notes.append(f"no {what} series")
        held = gpus_by.get(ck, 0.0)
        busy = _mean_series(busy_parts.get(ck, []))
        if held > 0 and not len(busy):
            notes.append("holds GPUs but has no DCGM series (DCGM_FI_DEV_GPU_UTIL)")
        if busy_parts.get(ck) and held <= 0:
            held = float(len(busy_parts[ck]))
            notes.append("GPU request not found; counting the GPUs DCGM reports for it")
        containers.append(
            usage.ContainerUsage(
                namespace=ck[0],
                pod=ck[1],
                container=ck[2],
                workload=owner.get(pod_key, ck[1]),
                node=node_of.get(pod_key) or gpu_node.get(ck),
                labels=labels_of.get(pod_key, {}),
                cpu=cpu_by.get(ck, series.Series.empty()),
                memory=mem_by.get(ck, series.Series.empty()),
                gpu_busy=busy,
                gpu_memory=_sum_series(fb_parts.get(ck, [])),
                gpu_model=gpu_model.get(ck),
                cpu_request=rcpu_by.get(ck, series.Series.empty()),
                memory_request=rmem_by.get(ck, series.Series.empty()),
                gpus=held,
                notes=tuple(notes),
            )
        )
    nodes = _nodes(capacity)
    return Fetched(
        window=window,
        containers=tuple(containers),
        nodes=nodes,
        problems=tuple(dict.fromkeys(problems)),
        idle_node_gpus=tuple(idle_node_gpus),
    )


def _mean_series(parts: Sequence[series.Series]) -> series.Series:
    """The mean of several GPUs' busy series of one container (range queries share a grid)."""
    if not parts:
        return series.Series.empty()
    if len(parts) == 1:
        return parts[0]
    times = np.unique(np.concatenate([p.times for p in parts]))
    stack = np.full((len(parts), len(times)), np.nan)
    for i, p in enumerate(parts):
        stack[i, np.searchsorted(times, p.times)] = p.values
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(stack, axis=0)
    return series.Series.of(times, mean)


def _sum_series(parts: Sequence[series.Series]) -> series.Series:
    """The sum of several GPUs' framebuffer series of one container."""
    if len(parts) <= 1:
        return parts[0] if parts else series.Series.empty()
    mean = _mean_series(parts)
    return series.Series.of(mean.times, mean.values * len(parts))


def _nodes(capacity: prometheus.Result) -> tuple[attribution.NodeCapacity, ...]:
    table: dict[str, dict[str, float]] = defaultdict(dict)
    for s in capacity.series:
        node = s.labels.get("node", "")
        value = s.samples.last()
        if node and value is not None and np.isfinite(value):
            table[node][s.labels.get("resource", "")] = value
    return tuple(
        attribution.NodeCapacity(
            name=node,
            cpu_cores=res.get("cpu", 0.0),
            memory_bytes=res.get("memory", 0.0),
            gpus=res.get("nvidia_com_gpu", 0.0),
        )
        for node, res in sorted(table.items())
    )
