"""The exporters' metric families, built from the replay's state under their real names and labels.

kube-state-metrics, cAdvisor, dcgm-exporter and kopilot's serving runtime, as docs/signals.md and
docs/replay-exporter.md list them. `Family` is plain data; sim/replayserving.py turns it into the
text exposition format. `PodState` and `GpuState` are what sim/replaying.py steps.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from kopilot.sim import clusterfiles

MIB = 1024.0**2
XID_APP, XID_STORM, XID_OFF_BUS = 13, 48, 79
"""An application fault, a double-bit ECC error (the storm), the GPU fallen off the bus."""

Labels = Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Sample:
    labels: Labels
    value: float


@dataclass(frozen=True, slots=True)
class Histogram:
    labels: Labels
    buckets: tuple[tuple[float, float], ...]
    """(upper bound, cumulative count), ending with +Inf."""
    total: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Family:
    name: str
    kind: Literal["gauge", "counter", "histogram", "unknown"]
    """`unknown` (untyped in the text format): a counter whose name cannot end in `_total`."""
    help: str
    samples: tuple[Sample, ...] = ()
    histograms: tuple[Histogram, ...] = ()


@dataclass(slots=True)
class PodState:
    """What the replay keeps for one pod between steps."""

    spec: clusterfiles.PodSpec
    uid: str
    ip: str
    column: int
    leak_mib: float = 0.0
    memory_mib: float = 0.0
    cores: float = 0.0
    cpu_seconds: float = 0.0
    ok: float = 0.0
    failed: float = 0.0
    restarts: int = 0
    buckets: list[float] = field(default_factory=list)
    count: float = 0.0
    total_s: float = 0.0


@dataclass(slots=True)
class GpuState:
    """What the replay keeps for one GPU between steps."""

    node: clusterfiles.NodeSpec
    spec: clusterfiles.GpuSpec
    pod: PodState | None
    util: float = 0.0
    temperature: float = 0.0
    fb_used_mib: float = 0.0
    last_xid: int = 0
    xids: collections.deque[tuple[float, int, int]] = field(default_factory=collections.deque)
    xid_totals: dict[int, float] = field(
        default_factory=lambda: dict.fromkeys((XID_APP, XID_STORM, XID_OFF_BUS), 0.0)
    )
    """Every code the replay can raise starts at 0, so `rate()` sees the first XID too."""


def kube_state(cluster: clusterfiles.ClusterSpec, pods: Sequence[PodState]) -> list[Family]:
    """kube-state-metrics: node capacity, pod info and owner, requests, limits, restarts."""
    capacity = []
    for n in cluster.nodes:
        for name, amount in n.capacity.items():
            resource, unit = clusterfiles.ksm_resource(name)
            capacity.append(Sample({"node": n.name, "resource": resource, "unit": unit}, amount))
    info: list[Sample] = []
    owner: list[Sample] = []
    requests: list[Sample] = []
    limits: list[Sample] = []
    restarts: list[Sample] = []
    for p in pods:
        sp = p.spec
        ident = {"namespace": sp.namespace, "pod": sp.name, "uid": p.uid}
        info.append(
            Sample(
                {
                    **ident,
                    "node": sp.node,
                    "pod_ip": p.ip,
                    "host_ip": f"10.0.{p.ip.split('.')[2]}.1",
                    "created_by_kind": sp.owner_kind,
                    "created_by_name": sp.owner_name,
                    "priority_class": "",
                    "host_network": "false",
                },
                1.0,
            )
        )
        owner.append(
            Sample(
                {
                    **ident,
                    "owner_kind": sp.owner_kind,
                    "owner_name": sp.owner_name,
                    "owner_is_controller": "<none>" if sp.owner_kind == "<none>" else "true",
                },
                1.0,
            )
        )
        cont = {**ident, "container": sp.container, "node": sp.node}
        for out, amounts in ((requests, sp.requests), (limits, sp.limits)):
            for name, amount in amounts.items():
                resource, unit = clusterfiles.ksm_resource(name)
                out.append(Sample({**cont, "resource": resource, "unit": unit}, amount))
        restarts.append(Sample({**ident, "container": sp.container}, float(p.restarts)))
    return [
        Family(
            name="kube_node_status_capacity",
            kind="gauge",
            help="The capacity for different resources of a node.",
            samples=tuple(capacity),
        ),
        Family(
            name="kube_pod_info",
            kind="gauge",
            help="Information about pod.",
            samples=tuple(info),
        ),
        Family(
            name="kube_pod_owner",
            kind="gauge",
            help="Information about the Pod's owner.",
            samples=tuple(owner),
        ),
        Family(
            name="kube_pod_container_resource_requests",
            kind="gauge",
            help="The number of requested request resource by a container.",
            samples=tuple(requests),
        ),
        Family(
            name="kube_pod_container_resource_limits",
            kind="gauge",
            help="The number of requested limit resource by a container.",
            samples=tuple(limits),
        ),
        Family(
            name="kube_pod_container_status_restarts_total",
            kind="counter",
            help="The number of container restarts per container.",
            samples=tuple(restarts),
        ),
    ]


def cadvisor(pods: Sequence[PodState]) -> list[Family]:
    """Per container, plus the pod's own cgroup (container="") as cAdvisor reports it."""
    memory, cpu = [], []
    for p in pods:
        sp = p.spec
        for container in (sp.container, ""):
            labels = {
                "namespace": sp.namespace,
                "pod": sp.name,
                "container": container,
                "node": sp.node,
            }
            memory.append(Sample(labels, p.memory_mib * MIB))
            cpu.append(Sample(labels, p.cpu_seconds))
    return [
        Family(
            name="container_memory_working_set_bytes",
            kind="gauge",
            help="Current working set of the container in bytes",
            samples=tuple(memory),
        ),
        Family(
            name="container_cpu_usage_seconds_total",
            kind="counter",
            help="Cumulative cpu time consumed in seconds.",
            samples=tuple(cpu),
        ),
    ]


def dcgm(gpus: Sequence[GpuState]) -> list[Family]:
    """dcgm-exporter: per GPU, labelled with the pod using it."""
    util: list[Sample] = []
    fb: list[Sample] = []
    temp: list[Sample] = []
    last: list[Sample] = []
    counts: list[Sample] = []
    totals: list[Sample] = []
    for g in gpus:
        pod = g.pod.spec if g.pod is not None else None
        labels = {
            "gpu": str(g.spec.index),
            "UUID": g.spec.uuid,
            "device": f"nvidia{g.spec.index}",
            "modelName": g.node.gpu_model,
            "Hostname": g.node.name,
            "container": pod.container if pod else "",
            "namespace": pod.namespace if pod else "",
            "pod": pod.name if pod else "",
        }
        util.append(Sample(labels, round(g.util)))
        fb.append(Sample(labels, round(g.fb_used_mib)))
        temp.append(Sample(labels, round(g.temperature)))
        last.append(Sample(labels, float(g.last_xid)))
        seen: dict[int, int] = collections.defaultdict(int)
        for _, code, n in g.xids:
            seen[code] += n
        counts.extend(
            Sample({**labels, "xid": str(code)}, float(n)) for code, n in sorted(seen.items())
        )
        totals.extend(
            Sample({**labels, "xid": str(code)}, n) for code, n in sorted(g.xid_totals.items())
        )
    return [
        Family(
            name="DCGM_FI_DEV_GPU_UTIL",
            kind="gauge",
            help="GPU utilization (in %).",
            samples=tuple(util),
        ),
        Family(
            name="DCGM_FI_DEV_FB_USED",
            kind="gauge",
            help="Framebuffer memory used (in MiB).",
            samples=tuple(fb),
        ),
        Family(
            name="DCGM_FI_DEV_GPU_TEMP",
            kind="gauge",
            help="GPU temperature (in C).",
            samples=tuple(temp),
        ),
        Family(
            name="DCGM_FI_DEV_XID_ERRORS",
            kind="gauge",
            help="Value of the last XID error encountered.",
            samples=tuple(last),
        ),
        Family(
            name="DCGM_EXP_XID_ERRORS_COUNT",
            kind="gauge",
            help="Count of XID Errors within user-specified time window "
            "(see xid-count-window-size param).",
            samples=tuple(counts),
        ),
        Family(
            name="DCGM_EXP_XID_ERRORS_TOTAL",
            kind="unknown",  # a counter, but prometheus_client only writes `..._total` ones
            help="XID errors since the exporter started, by XID code.",
            samples=tuple(totals),
        ),
    ]


def serving(pods: Sequence[PodState], bounds: Sequence[float]) -> list[Family]:
    """kopilot's serving runtime, per serving pod."""
    answered, failures, durations, ready = [], [], [], []
    for p in pods:
        sp = p.spec
        if sp.serving is None:
            continue
        ident = {
            "namespace": sp.namespace,
            "pod": sp.name,
            "service": sp.service.split("/", 1)[1],
        }
        answered.append(Sample({**ident, "code": "200"}, p.ok))
        answered.append(Sample({**ident, "code": "500"}, p.failed))
        failures.append(Sample({**ident, "reason": "internal"}, p.failed))
        cumulative = tuple(zip(bounds, p.buckets, strict=True))
        durations.append(Histogram(ident, (*cumulative, (math.inf, p.count)), p.total_s))
        ready.append(Sample(ident, 1.0))
    return [
        Family(
            name="kopilot_serving_requests_total",
            kind="counter",
            help="Detection requests answered, by HTTP status.",
            samples=tuple(answered),
        ),
        Family(
            name="kopilot_serving_request_failures_total",
            kind="counter",
            help="Detection requests answered with an error, by reason.",
            samples=tuple(failures),
        ),
        Family(
            name="kopilot_serving_request_duration_seconds",
            kind="histogram",
            help="Time from a detection request's arrival to its answer.",
            histograms=tuple(durations),
        ),
        Family(
            name="kopilot_serving_ready",
            kind="gauge",
            help="1 once the model is loaded and warmed up.",
            samples=tuple(ready),
        ),
    ]


__all__ = [
    "Family",
    "GpuState",
    "Histogram",
    "PodState",
    "Sample",
    "cadvisor",
    "dcgm",
    "kube_state",
    "serving",
]
