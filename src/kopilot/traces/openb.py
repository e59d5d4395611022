"""Loader for the Alibaba GPU cluster trace 2023 ("openb"), the FGD paper's data.

Two kinds of CSV:

- node lists, columns `sn,cpu_milli,memory_mib,gpu,model` (model empty for CPU-only nodes);
- pod lists, columns `name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,
  creation_time,deletion_time,scheduled_time`. `gpu_milli` is per GPU and below 1000 only when
  `num_gpu == 1`; `gpu_spec` like `V100M16|V100M32` restricts the GPU model (empty = any).

Every row is validated; a bad row raises `errors.InvalidInputError` naming the file, the line and
the field, and saying what was expected.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from kopilot.model import cluster, errors, resources
from kopilot.traces import csvs

NODE_COLUMNS = ("sn", "cpu_milli", "memory_mib", "gpu", "model")
POD_COLUMNS = (
    "name",
    "cpu_milli",
    "memory_mib",
    "num_gpu",
    "gpu_milli",
    "gpu_spec",
    "qos",
    "pod_phase",
    "creation_time",
    "deletion_time",
    "scheduled_time",
)
MAX_GPUS_PER_NODE = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class TracePod:
    """One row of a pod list: the pod to place and the trace's own bookkeeping."""

    pod: cluster.Pod
    qos: str
    trace_phase: str
    creation_time: float
    deletion_time: float | None


class _Row:
    """One CSV row with its location, for error messages that point at it."""

    def __init__(self, path: Path, line: int, values: Mapping[str, str]) -> None:
        self.path = path
        self.line = line
        self.values = values

    def fail(self, field: str, reason: str) -> errors.InvalidInputError:
        value = self.values.get(field, "")
        return errors.InvalidInputError(
            f"{self.path}:{self.line}: field {field!r} = {value!r}: {reason}"
        )

    def text(self, field: str, *, required: bool = True) -> str:
        value = (self.values.get(field) or "").strip()
        if required and not value:
            raise self.fail(field, "is empty; every row needs it")
        return value

    def integer(self, field: str, *, minimum: int = 0) -> int:
        raw = self.text(field)
        try:
            value = int(raw)
        except ValueError:
            raise self.fail(field, "is not an integer") from None
        if value < minimum:
            raise self.fail(field, f"must be >= {minimum}")
        return value

    def number(self, field: str, *, required: bool = True) -> float | None:
        raw = self.text(field, required=required)
        if not raw:
            return None
        try:
            value = float(raw)
        except ValueError:
            raise self.fail(field, "is not a number") from None
        if math.isnan(value) or value < 0:
            raise self.fail(field, "must be a non-negative number")
        return value


def _rows(path: Path, columns: tuple[str, ...]) -> Iterator[_Row]:
    for line, values in csvs.rows(path, columns):
        yield _Row(path, line, values)


def load_nodes(path: str | Path) -> tuple[cluster.Node, ...]:
    """Read a node list; CPU-only nodes (`gpu` 0, empty `model`) have no GPUs."""
    path = Path(path)
    nodes: list[cluster.Node] = []
    seen: set[str] = set()
    for row in _rows(path, NODE_COLUMNS):
        name = row.text("sn")
        if name in seen:
            raise row.fail("sn", "duplicates an earlier node name")
        seen.add(name)
        cpu = row.integer("cpu_milli", minimum=1)
        memory = row.integer("memory_mib", minimum=1)
        count = row.integer("gpu")
        if count > MAX_GPUS_PER_NODE:
            raise row.fail("gpu", f"more than {MAX_GPUS_PER_NODE} GPUs on one node")
        model = row.text("model", required=count > 0)
        gpus = tuple(cluster.Gpu(index=i, model=model) for i in range(count))
        nodes.append(cluster.Node(name=name, cpu_milli=cpu, memory_mib=memory, gpus=gpus))
    if not nodes:
        raise errors.InvalidInputError(f"{path}: the node list has no rows")
    return tuple(nodes)


def _request(row: _Row) -> resources.Resources:
    cpu = row.integer("cpu_milli")
    memory = row.integer("memory_mib")
    count = row.integer("num_gpu")
    milli = row.integer("gpu_milli")
    if count == 0:
        if milli:
            raise row.fail("gpu_milli", "must be 0 when num_gpu is 0")
        return resources.Resources(cpu_milli=cpu, memory_mib=memory)
    if not 1 <= milli <= resources.GPU_MILLI:
        raise row.fail("gpu_milli", "must be 1..1000 (per GPU) when num_gpu > 0")
    if milli < resources.GPU_MILLI:
        if count != 1:
            raise row.fail("gpu_milli", "a GPU share (< 1000) is only valid with num_gpu == 1")
        return resources.Resources(cpu_milli=cpu, memory_mib=memory, gpu_milli=milli)
    return resources.Resources(cpu_milli=cpu, memory_mib=memory, gpus=count)


def load_pods(path: str | Path) -> tuple[TracePod, ...]:
    """Read a pod list, in file order. Every pod is returned Pending, to be placed."""
    path = Path(path)
    pods: list[TracePod] = []
    seen: set[str] = set()
    for row in _rows(path, POD_COLUMNS):
        name = row.text("name")
        if name in seen:
            raise row.fail("name", "duplicates an earlier pod name")
        seen.add(name)
        request = _request(row)
        spec = row.text("gpu_spec", required=False)
        models = frozenset(m.strip() for m in spec.split("|") if m.strip()) if spec else frozenset()
        if spec and not models:
            raise row.fail(
                "gpu_spec", "names no GPU model; use e.g. V100M16|V100M32 or leave empty"
            )
        created = row.number("creation_time")
        deleted = row.number("deletion_time", required=False)
        qos = row.text("qos", required=False)
        pod = cluster.Pod(
            name=name,
            request=request,
            gpu_models=models,
            created_at=created or 0.0,
            labels={"qos": qos} if qos else {},
        )
        pods.append(
            TracePod(
                pod=pod,
                qos=qos,
                trace_phase=row.text("pod_phase", required=False),
                creation_time=created or 0.0,
                deletion_time=deleted,
            )
        )
    if not pods:
        raise errors.InvalidInputError(f"{path}: the pod list has no rows")
    return tuple(pods)
