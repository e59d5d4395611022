"""Idle and waste detection: GPUs allocated but idle, services that could scale to zero, and
oversized requests. Pure: usage in, findings (with reasons and evidence) out."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from kopilot.cost import prices, rightsizing, usage
from kopilot.model import actions


@dataclass(frozen=True, slots=True, kw_only=True)
class IdleGpu:
    """A container that held GPUs while they sat below the busy threshold for a whole run of at
    least `min_idle_s`; `idle_hours` sums those runs, `cost` prices them."""

    namespace: str
    pod: str
    container: str
    node: str | None
    gpus: float
    idle_hours: float
    observed_hours: float
    mean_busy: float
    max_busy: float
    cost: float

    @property
    def subject(self) -> str:
        return f"pod/{self.namespace}/{self.pod}"


def _runs(mask: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """(start, end) index pairs of the runs of True in a boolean array (end exclusive)."""
    m = np.concatenate(([False], mask.astype(bool), [False]))
    edges = np.flatnonzero(np.diff(m.astype(np.int8)))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


def idle_gpus(
    containers: Iterable[usage.ContainerUsage],
    book: prices.PriceBook,
    *,
    threshold: float = 0.05,
    min_idle_s: float = 3600.0,
) -> list[IdleGpu]:
    """GPUs allocated but idle: busy below `threshold` (a fraction, DCGM util / 100) without a
    break for at least `min_idle_s`. Only containers with a GPU series are judged."""
    found: list[IdleGpu] = []
    for c in containers:
        s = usage.finite(c.gpu_busy)
        if c.gpus <= 0 or len(s) < 2:
            continue
        steps = np.diff(s.times)
        dt = np.append(steps, np.median(steps))
        idle_s = 0.0
        for a, b in _runs(s.values < threshold):
            span = float(s.times[b - 1] - s.times[a] + dt[b - 1])
            if span >= min_idle_s:
                idle_s += span
        if idle_s <= 0:
            continue
        hours = idle_s / 3600.0
        found.append(
            IdleGpu(
                namespace=c.namespace,
                pod=c.pod,
                container=c.container,
                node=c.node,
                gpus=c.gpus,
                idle_hours=hours,
                observed_hours=float(dt.sum()) / 3600.0,
                mean_busy=float(np.mean(s.values)),
                max_busy=float(np.max(s.values)),
                cost=hours * c.gpus * book.gpu_price(c.gpu_model),
            )
        )
    return sorted(found, key=lambda g: (-g.cost, g.namespace, g.pod))


def idle_gpu_alerts(found: Sequence[IdleGpu], *, threshold: float) -> list[actions.Alert]:
    return [
        actions.Alert(
            subject=g.subject,
            summary=f"{g.gpus:g} GPU(s) idle for {g.idle_hours:.1f} h",
            reason=(
                f"GPU busy stayed below {threshold:.0%} for {g.idle_hours:.1f} of "
                f"{g.observed_hours:.1f} h observed; that idle time cost {g.cost:.2f}"
            ),
            evidence={
                "idle_hours": round(g.idle_hours, 3),
                "mean_busy": round(g.mean_busy, 4),
                "max_busy": round(g.max_busy, 4),
                "cost": round(g.cost, 2),
            },
            policy="cost.idle",
        )
        for g in found
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScaleToZero:
    """A workload whose every container stayed below the floors for the whole window."""

    workload: str
    pods: int
    max_cpu_cores: float
    max_gpu_busy: float | None
    observed_hours: float


def scale_to_zero(
    containers: Iterable[usage.ContainerUsage],
    *,
    cpu_floor: float = 0.01,
    gpu_floor: float = 0.01,
    min_hours: float = 1.0,
) -> list[ScaleToZero]:
    """Workloads that did nothing: CPU below `cpu_floor` cores and GPU busy below `gpu_floor`
    throughout, observed for at least `min_hours`. A workload with no CPU data is not judged."""
    by_workload: dict[str, list[usage.ContainerUsage]] = defaultdict(list)
    for c in containers:
        by_workload[c.workload_key].append(c)
    out: list[ScaleToZero] = []
    for key, group in sorted(by_workload.items()):
        cpus = [usage.finite(c.cpu) for c in group]
        if any(len(s) == 0 for s in cpus):
            continue
        t = np.concatenate([s.times for s in cpus])
        hours = float(t.max() - t.min()) / 3600.0
        max_cpu = max(float(np.max(s.values)) for s in cpus)
        gpu_parts = [usage.finite(c.gpu_busy) for c in group if c.gpus > 0]
        max_gpu = max((float(np.max(s.values)) for s in gpu_parts if len(s)), default=None)
        if hours < min_hours or max_cpu >= cpu_floor:
            continue
        if max_gpu is not None and max_gpu >= gpu_floor:
            continue
        pods = len({c.pod for c in group})
        out.append(
            ScaleToZero(
                workload=key,
                pods=pods,
                max_cpu_cores=max_cpu,
                max_gpu_busy=max_gpu,
                observed_hours=hours,
            )
        )
    return out


def oversized(
    rec: rightsizing.Recommendation,
    *,
    cpu_request: float | None,
    memory_request: float | None,
    gpus: float,
    tolerance: float = 0.2,
) -> list[actions.Recommend]:
    """A `Recommend` for every resource whose request exceeds the recommendation's peak level by
    more than `tolerance` (a fraction)."""
    out: list[actions.Recommend] = []
    namespace, workload, container = [*rec.subject.split("/", 2), "", ""][:3]
    checks = (
        ("cpu", cpu_request, rec.cpu, "cores"),
        ("memory", memory_request, rec.memory, "bytes"),
        ("gpu", gpus if gpus > 0 else None, rec.gpu, "GPUs"),
    )
    for resource, current, level, unit in checks:
        if current is None or level is None or current <= 0:
            continue
        if current > level.value * (1 + tolerance):
            out.append(
                actions.Recommend(
                    subject=f"workload/{namespace}/{workload}",
                    resource=f"{container}/{resource}",
                    current=current,
                    recommended=level.value,
                    reason=(
                        f"{resource} request {current:.4g} {unit} is "
                        f"{current / max(level.value, 1e-12):.1f}x the {rec.strategy} "
                        f"recommendation {level.value:.4g} {unit}"
                    ),
                    evidence={
                        "strategy": rec.strategy,
                        "scheduled": int(bool(level.schedule)),
                        "notes": "; ".join(rec.notes),
                    },
                    policy=f"cost.rightsizing.{rec.strategy}",
                )
            )
    return out
