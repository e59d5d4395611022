"""kopilot's annotations: what people tell it about a workload, and what it records back.

(The module is `notes`: the name `annotations` is taken by `from __future__ import annotations`.)

Read (on a Deployment or StatefulSet):

| annotation | meaning | default |
|---|---|---|
| `kopilot.io/managed: "true"` | kopilot may scale this workload | (not managed) |
| `kopilot.io/capacity-rps` | requests/s one ready replica serves within the SLO | required |
| `kopilot.io/cold-start-seconds` | creation-to-ready time of a new replica | 60 |
| `kopilot.io/min-replicas` / `kopilot.io/max-replicas` | bounds of every plan | 0 / 100 |
| `kopilot.io/demand-query` | PromQL for the service's request rate (req/s) | (no demand history) |

Written (on every object kopilot acts on): `kopilot.io/last-action` (what and why),
`kopilot.io/last-action-time` (RFC 3339) and `kopilot.io/decision-id`, which makes a replayed
decision a no-op (`kopilot.kube.resuming`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from kopilot.model import errors

PREFIX = "kopilot.io/"
MANAGED = PREFIX + "managed"
CAPACITY_RPS = PREFIX + "capacity-rps"
COLD_START_S = PREFIX + "cold-start-seconds"
MIN_REPLICAS = PREFIX + "min-replicas"
MAX_REPLICAS = PREFIX + "max-replicas"
DEMAND_QUERY = PREFIX + "demand-query"
LAST_ACTION = PREFIX + "last-action"
LAST_ACTION_TIME = PREFIX + "last-action-time"
DECISION_ID = PREFIX + "decision-id"

DEFAULT_COLD_START_S = 60.0
DEFAULT_MIN_REPLICAS = 0
DEFAULT_MAX_REPLICAS = 100
MAX_VALUE_CHARS = 1024
"""Annotations kopilot writes are cut to this length (the API allows 256 KiB in total)."""


class AnnotationError(errors.InvalidInputError):
    """An annotation a person wrote cannot be read; the message names it and says what to write."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceSettings:
    """What the annotations of one managed workload say."""

    capacity_rps: float
    cold_start_s: float
    min_replicas: int
    max_replicas: int
    demand_query: str | None


def is_managed(annotations: Mapping[str, str]) -> bool:
    return annotations.get(MANAGED, "").strip().lower() == "true"


def service_settings(annotations: Mapping[str, str], where: str) -> ServiceSettings:
    """Read a managed workload's settings; `AnnotationError` names `where` and the annotation."""
    raw_capacity = annotations.get(CAPACITY_RPS)
    if raw_capacity is None:
        raise AnnotationError(
            f"{where}: {MANAGED} is true but {CAPACITY_RPS} is missing; set it to the "
            'requests/s one ready replica serves within its latency SLO (e.g. "12.5")'
        )
    capacity = _number(annotations, CAPACITY_RPS, where, default=0.0)
    if not capacity > 0:
        raise AnnotationError(f"{where}: {CAPACITY_RPS} must be > 0, got {raw_capacity!r}")
    cold = _number(annotations, COLD_START_S, where, default=DEFAULT_COLD_START_S)
    if cold < 0:
        raise AnnotationError(f"{where}: {COLD_START_S} must be >= 0, got {cold:g}")
    lo = _whole(annotations, MIN_REPLICAS, where, default=DEFAULT_MIN_REPLICAS)
    hi = _whole(annotations, MAX_REPLICAS, where, default=DEFAULT_MAX_REPLICAS)
    if hi < lo:
        raise AnnotationError(
            f"{where}: {MAX_REPLICAS} ({hi}) is below {MIN_REPLICAS} ({lo}); swap or fix them"
        )
    query = annotations.get(DEMAND_QUERY, "").strip() or None
    return ServiceSettings(
        capacity_rps=capacity,
        cold_start_s=cold,
        min_replicas=lo,
        max_replicas=hi,
        demand_query=query,
    )


def clip(text: str) -> str:
    """A value short enough to write as an annotation."""
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 3] + "..."


def _number(annotations: Mapping[str, str], key: str, where: str, *, default: float) -> float:
    raw = annotations.get(key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError as e:
        raise AnnotationError(f"{where}: {key} must be a number, got {raw!r}") from e
    if not math.isfinite(value):
        raise AnnotationError(f"{where}: {key} must be finite, got {raw!r}")
    return value


def _whole(annotations: Mapping[str, str], key: str, where: str, *, default: int) -> int:
    raw = annotations.get(key)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError as e:
        raise AnnotationError(f"{where}: {key} must be a whole number, got {raw!r}") from e
    if value < 0:
        raise AnnotationError(f"{where}: {key} must be >= 0, got {value}")
    return value
