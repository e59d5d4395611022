"""Actions: what a policy proposes and the governor approves or refuses.

Every action names its target, carries a human-readable `reason`, the `evidence` behind it (a few
named figures), and the `policy` that proposed it. Actions are data; a World carries them out.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from kopilot.model import gpus

Evidence = Mapping[str, float | int | str]


@dataclass(frozen=True, slots=True, kw_only=True)
class Proposal:
    """What every action carries: why, the figures behind it, and which policy proposed it."""

    reason: str
    evidence: Evidence = field(default_factory=dict)
    policy: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Scale(Proposal):
    """Set a service's desired replica count (the Deployment's scale subresource)."""

    kind: ClassVar[str] = "Scale"
    disruptive: ClassVar[bool] = False
    service: str
    replicas: int
    current: int

    @property
    def target(self) -> str:
        return f"service/{self.service}"

    @property
    def namespace(self) -> str:
        return self.service.split("/", 1)[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class Bind(Proposal):
    """Bind a pending pod to a node (and to specific GPUs / a MIG slice on it)."""

    kind: ClassVar[str] = "Bind"
    disruptive: ClassVar[bool] = False
    pod: str
    node: str
    gpu_indices: tuple[int, ...] = ()

    @property
    def target(self) -> str:
        return f"pod/{self.pod}"

    @property
    def namespace(self) -> str:
        return self.pod.split("/", 1)[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class Repartition(Proposal):
    """Change the MIG geometry of one GPU (drains the GPU's MIG instances first)."""

    kind: ClassVar[str] = "Repartition"
    disruptive: ClassVar[bool] = True
    node: str
    gpu_index: int
    layout: gpus.MigLayout

    @property
    def target(self) -> str:
        return f"node/{self.node}"

    @property
    def namespace(self) -> str:
        return ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Restart(Proposal):
    """Restart a pod (delete it so its controller replaces it)."""

    kind: ClassVar[str] = "Restart"
    disruptive: ClassVar[bool] = True
    pod: str
    service: str | None = None

    @property
    def target(self) -> str:
        return f"pod/{self.pod}"

    @property
    def namespace(self) -> str:
        return self.pod.split("/", 1)[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class Cordon(Proposal):
    """Mark a node unschedulable (or schedulable again with `uncordon=True`); optionally drain it."""

    kind: ClassVar[str] = "Cordon"
    disruptive: ClassVar[bool] = True
    node: str
    uncordon: bool = False
    drain: bool = False

    @property
    def target(self) -> str:
        return f"node/{self.node}"

    @property
    def namespace(self) -> str:
        return ""


class Severity(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert(Proposal):
    """Tell a person: an event on the object and a notification, with the evidence."""

    kind: ClassVar[str] = "Alert"
    disruptive: ClassVar[bool] = False
    subject: str
    severity: Severity = Severity.WARNING
    summary: str

    @property
    def target(self) -> str:
        return self.subject

    @property
    def namespace(self) -> str:
        parts = self.subject.split("/")
        return parts[1] if len(parts) == 3 else ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Recommend(Proposal):
    """A recommendation for a person or a later action: e.g. a container's new requests."""

    kind: ClassVar[str] = "Recommend"
    disruptive: ClassVar[bool] = False
    subject: str
    resource: str
    current: float
    recommended: float

    @property
    def target(self) -> str:
        return self.subject

    @property
    def namespace(self) -> str:
        parts = self.subject.split("/")
        return parts[1] if len(parts) == 3 else ""


Action = Scale | Bind | Repartition | Restart | Cordon | Alert | Recommend
KINDS: tuple[type[Action], ...] = (Scale, Bind, Repartition, Restart, Cordon, Alert, Recommend)


def to_record(action: Action) -> dict[str, Any]:
    """A JSON-ready dict of an action, with its kind and target."""
    body = dataclasses.asdict(action)
    return {"kind": action.kind, "target": action.target, **body}


def describe(action: Action) -> str:
    """One line a person can read: what, on what, and why."""
    match action:
        case Scale():
            what = f"scale {action.service} {action.current} -> {action.replicas}"
        case Bind():
            gpus_ = f" gpus {list(action.gpu_indices)}" if action.gpu_indices else ""
            what = f"bind {action.pod} -> {action.node}{gpus_}"
        case Repartition():
            what = f"repartition {action.node} gpu {action.gpu_index} -> {action.layout.describe()}"
        case Restart():
            what = f"restart {action.pod}"
        case Cordon():
            what = f"{'uncordon' if action.uncordon else 'cordon'} {action.node}"
        case Alert():
            what = f"alert [{action.severity}] {action.subject}: {action.summary}"
        case Recommend():
            what = f"recommend {action.subject} {action.resource} {action.current:g} -> {action.recommended:g}"
    return f"{what} ({action.reason})"


def from_record(record: Mapping[str, Any]) -> Action:
    """Rebuild an action from `to_record` output (e.g. read back from an audit log or a queue)."""
    by_kind = {k.kind: k for k in KINDS}
    kind = record.get("kind")
    cls = by_kind.get(str(kind))
    if cls is None:
        raise ValueError(f"unknown action kind {kind!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    body = {k: v for k, v in record.items() if k in names}
    if cls is Repartition:
        layout = body["layout"]
        body["layout"] = gpus.MigLayout(
            model=layout["model"],
            slices=tuple(
                gpus.MigSlice(profile=s["profile"], start=s["start"]) for s in layout["slices"]
            ),
        )
    if cls is Bind:
        body["gpu_indices"] = tuple(body.get("gpu_indices", ()))
    if cls is Alert and "severity" in body:
        body["severity"] = Severity(body["severity"])
    return cls(**body)
