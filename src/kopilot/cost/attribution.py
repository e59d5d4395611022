"""Cost attribution as in the OpenCost specification: each container is charged, step by step,
for `max(request, usage)` of CPU and memory and for the GPUs it holds, times the hourly price.

What nodes cost beyond what their containers are charged is the cluster's idle cost. Costs roll up
by pod, workload, namespace or any pod label. All pure: series in, figures out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from kopilot.cost import prices, usage
from kopilot.model import cluster, errors


@dataclass(frozen=True, slots=True, kw_only=True)
class Cost:
    """Allocated and used resource-hours and their price. Waste = allocated - used, priced."""

    cpu_core_hours: float = 0.0
    ram_gib_hours: float = 0.0
    gpu_hours: float = 0.0
    cpu_used_core_hours: float = 0.0
    ram_used_gib_hours: float = 0.0
    gpu_used_hours: float = 0.0
    cpu_cost: float = 0.0
    ram_cost: float = 0.0
    gpu_cost: float = 0.0
    cpu_waste_cost: float = 0.0
    ram_waste_cost: float = 0.0
    gpu_waste_cost: float = 0.0

    @property
    def total(self) -> float:
        return self.cpu_cost + self.ram_cost + self.gpu_cost

    @property
    def waste(self) -> float:
        return self.cpu_waste_cost + self.ram_waste_cost + self.gpu_waste_cost

    @property
    def efficiency(self) -> float | None:
        """Used cost / allocated cost (None when nothing was allocated)."""
        return (self.total - self.waste) / self.total if self.total > 0 else None

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            **{
                f.name: getattr(self, f.name) + getattr(other, f.name)
                for f in dataclasses.fields(Cost)
            }
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Allocation:
    """What one container was charged for over a window."""

    namespace: str
    pod: str
    container: str
    workload: str
    node: str | None
    labels: Mapping[str, str] = field(default_factory=dict)
    running_hours: float = 0.0
    cost: Cost = field(default_factory=Cost)


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeCapacity:
    """What a node offers, priced as if all of it were allocated while it ran."""

    name: str
    cpu_cores: float
    memory_bytes: float
    gpus: float = 0.0
    gpu_model: str | None = None
    running_hours: float | None = None
    """Hours the node ran inside the window (None = the whole window)."""

    @staticmethod
    def of(node: cluster.Node) -> NodeCapacity:
        return NodeCapacity(
            name=node.name,
            cpu_cores=node.cpu_milli / 1000.0,
            memory_bytes=node.memory_mib * 1024.0**2,
            gpus=float(len(node.gpus)),
            gpu_model=node.gpu_model,
        )


def allocate(
    container: usage.ContainerUsage, window: usage.Window, book: prices.PriceBook
) -> Allocation:
    """Charge one container over `window`: per step, max(request, usage) for CPU and memory,
    and its GPU share for every step it ran (a step where any of its series has a sample)."""
    grid = window.grid()
    hours = window.step / 3600.0
    cpu_used = usage.on_grid(container.cpu, grid)
    mem_used = usage.on_grid(container.memory, grid)
    cpu_req = usage.on_grid(container.cpu_request, grid)
    mem_req = usage.on_grid(container.memory_request, grid)
    gpu_busy = usage.on_grid(container.gpu_busy, grid)
    running = ~(np.isnan(cpu_used) & np.isnan(mem_used) & np.isnan(cpu_req) & np.isnan(mem_req))
    running |= ~np.isnan(gpu_busy)
    cpu_alloc = np.nan_to_num(np.fmax(cpu_req, cpu_used))
    mem_alloc = np.nan_to_num(np.fmax(mem_req, mem_used))
    cpu_use = np.minimum(np.nan_to_num(cpu_used), cpu_alloc)
    mem_use = np.minimum(np.nan_to_num(mem_used), mem_alloc)
    gib = prices.GIB
    running_hours = float(np.count_nonzero(running)) * hours
    gpu_hours = container.gpus * running_hours
    gpu_used_hours = container.gpus * float(np.nansum(np.clip(gpu_busy[running], 0.0, 1.0))) * hours
    gpu_price = book.gpu_price(container.gpu_model)
    cpu_core_hours = float(cpu_alloc.sum()) * hours
    cpu_used_hours = float(cpu_use.sum()) * hours
    ram_gib_hours = float(mem_alloc.sum()) / gib * hours
    ram_used_hours = float(mem_use.sum()) / gib * hours
    cost = Cost(
        cpu_core_hours=cpu_core_hours,
        ram_gib_hours=ram_gib_hours,
        gpu_hours=gpu_hours,
        cpu_used_core_hours=cpu_used_hours,
        ram_used_gib_hours=ram_used_hours,
        gpu_used_hours=gpu_used_hours,
        cpu_cost=cpu_core_hours * book.cpu_core_hour,
        ram_cost=ram_gib_hours * book.ram_gib_hour,
        gpu_cost=gpu_hours * gpu_price,
        cpu_waste_cost=(cpu_core_hours - cpu_used_hours) * book.cpu_core_hour,
        ram_waste_cost=(ram_gib_hours - ram_used_hours) * book.ram_gib_hour,
        # GPU busy is only known when a DCGM series exists; without it no GPU waste is claimed.
        gpu_waste_cost=(gpu_hours - gpu_used_hours) * gpu_price if len(container.gpu_busy) else 0.0,
    )
    return Allocation(
        namespace=container.namespace,
        pod=container.pod,
        container=container.container,
        workload=container.workload,
        node=container.node,
        labels=container.labels,
        running_hours=running_hours,
        cost=cost,
    )


def group_key(allocation: Allocation, by: str) -> str:
    """The key an allocation rolls up to: `pod`, `workload`, `namespace`, `container`, or
    `label:<name>` (pods without that label go to `<name>=<none>`)."""
    match by:
        case "pod":
            return f"{allocation.namespace}/{allocation.pod}"
        case "workload":
            return f"{allocation.namespace}/{allocation.workload}"
        case "namespace":
            return allocation.namespace
        case "container":
            return f"{allocation.namespace}/{allocation.pod}/{allocation.container}"
        case _ if by.startswith("label:") and len(by) > len("label:"):
            name = by.removeprefix("label:")
            return f"{name}={allocation.labels.get(name, '<none>')}"
    raise errors.InvalidInputError(
        f"cannot group costs by {by!r}: use pod, workload, namespace, container or label:<name>"
    )


def aggregate(allocations: Iterable[Allocation], by: str) -> dict[str, Cost]:
    """Sum costs by `group_key(by)`, keys sorted by total cost, most expensive first."""
    totals: dict[str, Cost] = {}
    for a in allocations:
        key = group_key(a, by)
        totals[key] = totals.get(key, Cost()) + a.cost
    return dict(sorted(totals.items(), key=lambda kv: (-kv[1].total, kv[0])))


def idle(
    nodes: Sequence[NodeCapacity],
    allocations: Sequence[Allocation],
    window: usage.Window,
    book: prices.PriceBook,
) -> dict[str, Cost]:
    """Per node: what its capacity cost over the window minus what its containers were charged
    (each resource clamped at zero). Containers on unknown nodes are not subtracted anywhere."""
    out: dict[str, Cost] = {}
    for node in nodes:
        hours = window.hours if node.running_hours is None else node.running_hours
        charged = sum((a.cost for a in allocations if a.node == node.name), Cost())
        cpu_h = max(0.0, node.cpu_cores * hours - charged.cpu_core_hours)
        ram_h = max(0.0, node.memory_bytes / prices.GIB * hours - charged.ram_gib_hours)
        gpu_h = max(0.0, node.gpus * hours - charged.gpu_hours)
        gpu_price = book.gpu_price(node.gpu_model)
        out[node.name] = Cost(
            cpu_core_hours=cpu_h,
            ram_gib_hours=ram_h,
            gpu_hours=gpu_h,
            cpu_cost=cpu_h * book.cpu_core_hour,
            ram_cost=ram_h * book.ram_gib_hour,
            gpu_cost=gpu_h * gpu_price,
            cpu_waste_cost=cpu_h * book.cpu_core_hour,
            ram_waste_cost=ram_h * book.ram_gib_hour,
            gpu_waste_cost=gpu_h * gpu_price,
        )
    return out
