"""Faults the replay exporter injects: what, where, from when and until when (trace time).

| kind | target | what it does | knob (default) |
|---|---|---|---|
| `leak` | `pod` (ns/name) | the pod's working set grows until it reaches its memory limit, then drops back as an OOM-kill would (restart counted, requests failed), and grows again | `mib_per_min` (20) |
| `xid-storm` | `node` + `gpu` | the GPU's XID errors rise (0.2 a minute, +3 a minute every hour); after `fatal_after` it falls off the bus (XID 79) and its pods fail | `fatal_after` (2h) |
| `bad-node` | `node` | every pod on the node fails requests (8 a minute) and is twice as slow | `factor` (2.0) |
| `latency-regression` | `service` (ns/name) | every pod of the service is slower | `factor` (1.5) |

`at` and `duration` are trace times (seconds, or `90s`, `30m`, `6h30m`, `1d`); without `at` a fault
starts now, without `duration` it never ends. The same schema parses `POST /faults` bodies,
`--fault kind=leak,pod=ml/x,at=2h` flags and the `faults:` list of a scenario file.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import pydantic

from kopilot.kits import yamlfiles
from kopilot.model import errors
from kopilot.sim import clusterfiles

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_PARTS = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?[smhd])+")
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smhd])")
MAX_TRACE_S = 10 * 365 * 86400.0


class Kind(enum.StrEnum):
    LEAK = "leak"
    XID_STORM = "xid-storm"
    BAD_NODE = "bad-node"
    LATENCY_REGRESSION = "latency-regression"


class Status(enum.StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    ENDED = "ended"


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """One injected fault, in trace seconds; `target` is a pod, node, `node/gpu` or service."""

    id: int
    kind: Kind
    target: str
    at_s: float
    until_s: float | None
    knob: float

    def status(self, t: float) -> Status:
        if t < self.at_s:
            return Status.PENDING
        if self.until_s is not None and t >= self.until_s:
            return Status.ENDED
        return Status.ACTIVE

    def active(self, t: float) -> bool:
        return self.status(t) is Status.ACTIVE

    def describe(self, t: float) -> dict[str, object]:
        """The fault as JSON for `GET /faults`."""
        knob = {
            Kind.LEAK: "mib_per_min",
            Kind.XID_STORM: "fatal_after_s",
            Kind.BAD_NODE: "factor",
            Kind.LATENCY_REGRESSION: "factor",
        }[self.kind]
        return {
            "id": self.id,
            "kind": str(self.kind),
            "target": self.target,
            "at_s": self.at_s,
            "until_s": self.until_s,
            knob: self.knob,
            "status": str(self.status(t)),
        }


def seconds(value: str | float, *, field: str) -> float:
    """A trace time: seconds, or a number with s, m, h or d."""
    if isinstance(value, bool):
        raise ValueError(f"{field}: expected a time like 90, 30m or 26h")
    if isinstance(value, int | float):
        out = float(value)
    else:
        text = value.strip()
        if _NUMBER.fullmatch(text):
            out = float(text)
        elif _PARTS.fullmatch(text):
            out = sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
        else:
            raise ValueError(f"{field}: {value!r} is not a time (e.g. 90, 90s, 30m, 6h30m, 1d)")
    if not 0 <= out <= MAX_TRACE_S:
        raise ValueError(f"{field}: {value!r} must be between 0 and 10 years")
    return out


Time = str | float


class FaultRequest(pydantic.BaseModel):
    """One fault as a user writes it (HTTP body, flag, scenario file)."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    kind: Kind
    pod: str | None = pydantic.Field(default=None, max_length=320)
    node: str | None = pydantic.Field(default=None, max_length=253)
    gpu: int | None = pydantic.Field(default=None, ge=0, le=63)
    service: str | None = pydantic.Field(default=None, max_length=320)
    at: Time | None = None
    duration: Time | None = None
    mib_per_min: float | None = pydantic.Field(default=None, gt=0, le=1e6)
    fatal_after: Time | None = None
    factor: float | None = pydantic.Field(default=None, ge=1.0, le=1000.0)

    @pydantic.field_validator("at", "duration", "fatal_after")
    @classmethod
    def _time(cls, v: Time | None, info: pydantic.ValidationInfo) -> Time | None:
        if v is not None:
            seconds(v, field=str(info.field_name))
        return v

    @pydantic.model_validator(mode="after")
    def _fits_kind(self) -> Self:
        needs = {
            Kind.LEAK: {"pod"},
            Kind.XID_STORM: {"node", "gpu"},
            Kind.BAD_NODE: {"node"},
            Kind.LATENCY_REGRESSION: {"service"},
        }[self.kind]
        knobs = {
            Kind.LEAK: {"mib_per_min"},
            Kind.XID_STORM: {"fatal_after"},
            Kind.BAD_NODE: {"factor"},
            Kind.LATENCY_REGRESSION: {"factor"},
        }[self.kind]
        given = {f for f in ("pod", "node", "gpu", "service") if getattr(self, f) is not None}
        if given != needs:
            raise ValueError(
                f"a {self.kind} fault names {' and '.join(sorted(needs))} "
                f"(got {', '.join(sorted(given)) or 'none'})"
            )
        wrong = {
            f for f in ("mib_per_min", "fatal_after", "factor") if getattr(self, f) is not None
        } - knobs
        if wrong:
            raise ValueError(f"{', '.join(sorted(wrong))} does not apply to a {self.kind} fault")
        return self

    def resolve(self, *, fault_id: int, now_s: float, cluster: clusterfiles.ClusterSpec) -> Fault:
        """The fault for `cluster`, starting now if no `at`; InvalidInputError for a bad target."""
        at = now_s if self.at is None else seconds(self.at, field="at")
        until = None if self.duration is None else at + seconds(self.duration, field="duration")
        match self.kind:
            case Kind.LEAK:
                target = str(self.pod)
                if cluster.pod(target) is None:
                    raise errors.InvalidInputError(
                        f"pod: {target!r} is not a pod of the cluster (give namespace/name)"
                    )
                knob = self.mib_per_min or 20.0
            case Kind.XID_STORM:
                node = _node(cluster, str(self.node))
                if self.gpu is None or self.gpu >= len(node.gpus):
                    raise errors.InvalidInputError(
                        f"gpu: {node.name} has {len(node.gpus)} GPUs (indices from 0)"
                    )
                target = f"{node.name}/{self.gpu}"
                knob = 7200.0 if self.fatal_after is None else seconds(self.fatal_after, field="")
            case Kind.BAD_NODE:
                target = _node(cluster, str(self.node)).name
                knob = self.factor or 2.0
            case Kind.LATENCY_REGRESSION:
                target = str(self.service)
                if target not in cluster.services:
                    raise errors.InvalidInputError(
                        f"service: {target!r} is not a serving service of the cluster "
                        f"({', '.join(cluster.services) or 'none'})"
                    )
                knob = self.factor or 1.5
        return Fault(id=fault_id, kind=self.kind, target=target, at_s=at, until_s=until, knob=knob)


def _node(cluster: clusterfiles.ClusterSpec, name: str) -> clusterfiles.NodeSpec:
    node = cluster.node(name)
    if node is None:
        raise errors.InvalidInputError(f"node: {name!r} is not a node of the cluster")
    return node


def request(raw: Mapping[str, object], *, source: str) -> FaultRequest:
    """Validate one fault; InvalidInputError is one line naming each wrong field."""
    try:
        return FaultRequest.model_validate(raw)
    except pydantic.ValidationError as e:
        raise errors.InvalidInputError(f"{source}: {yamlfiles.field_errors(e)}") from e


def from_flag(text: str) -> FaultRequest:
    """`kind=leak,pod=ml/x,at=2h` -> a FaultRequest."""
    raw: dict[str, object] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            raise errors.InvalidInputError(
                f"--fault {text!r}: {part!r} is not key=value (e.g. kind=leak,pod=ml/x,at=2h)"
            )
        raw[key.strip()] = int(value) if key.strip() == "gpu" and value.isdigit() else value
    return request(raw, source=f"--fault {text!r}")


class _Scenario(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)
    faults: list[FaultRequest] = pydantic.Field(default_factory=list, max_length=1000)


def load_scenario(path: Path) -> tuple[FaultRequest, ...]:
    """The `faults:` list of a fault scenario file."""
    return tuple(yamlfiles.load(path, _Scenario, what="fault scenario").faults)


__all__ = [
    "Fault",
    "FaultRequest",
    "Kind",
    "Status",
    "from_flag",
    "load_scenario",
    "request",
    "seconds",
]
