"""The `ModelService` custom resource (kopilot.io/v1alpha1): which workloads kopilot manages.

    apiVersion: kopilot.io/v1alpha1
    kind: ModelService
    metadata: {name: detector, namespace: ml}
    spec:
      targetRef: {kind: Deployment, name: detector}
      capacityPerReplica: 12.5      # req/s one ready replica serves within the SLO
      coldStartSeconds: 90
      minReplicas: 1
      maxReplicas: 8
      slo: {latencyMs: 200, percentile: 99}
      demandQuery: sum(rate(kopilot_serving_requests_total{namespace="ml"}[2m]))

The CRD (deploy/helm/kopilot/crds/) has a structural schema the API server enforces, with CEL
rules where a rule spans fields (`minReplicas <= maxReplicas`): a bad spec never reaches kopilot.
What the API server accepts but kopilot cannot use is decided here (`resolve`) and written back
as the `Ready` condition of the object's status, never acted on:

| reason | status | when |
|---|---|---|
| `Managed` | True | kopilot scales the target |
| `TargetNotFound` | False | no such Deployment/StatefulSet in the namespace |
| `TargetConflict` | False | another ModelService (first by name) already manages the target |
| `InvalidSpec` | False | a field kopilot needs is missing or of the wrong type (an object written before the schema, or under another version) |

A workload that both a ModelService and `kopilot.io/managed` annotations name is managed by the
ModelService (its spec wins; the condition's message says so).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict, cast

from kopilot.kube import converting, notes, objects
from kopilot.model import errors

GROUP = "kopilot.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
PATH = f"/apis/{GROUP}/{VERSION}/modelservices"
READY = "Ready"


class TargetRef(TypedDict, total=False):
    apiVersion: str
    kind: str
    name: str


class Condition(TypedDict, total=False):
    type: str
    status: str
    reason: str
    message: str
    observedGeneration: int
    lastTransitionTime: str


class ModelServiceSpec(TypedDict, total=False):
    targetRef: TargetRef
    capacityPerReplica: float
    coldStartSeconds: float
    minReplicas: int
    maxReplicas: int
    slo: dict[str, float]
    demandQuery: str


class ModelServiceStatus(TypedDict, total=False):
    observedGeneration: int
    conditions: list[Condition]


class ModelServiceMeta(objects.ObjectMeta, total=False):
    generation: int


class ModelService(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ModelServiceMeta
    spec: ModelServiceSpec
    status: ModelServiceStatus


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """What kopilot makes of one ModelService: the `Ready` condition it should carry."""

    usable: bool
    reason: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Spec:
    """One ModelService as read from the API (its settings, or why they cannot be read)."""

    namespace: str
    name: str
    generation: int
    target_kind: str
    target_name: str
    settings: notes.ServiceSettings | None
    invalid: str | None = None
    ready: Condition | None = None
    """The `Ready` condition the object carries now (None: none yet)."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def target_key(self) -> str:
        return f"{self.namespace}/{self.target_name}"


def _number(spec: Mapping[str, Any], key: str, default: float | None) -> float:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise errors.InvalidInputError(f"spec.{key} must be a finite number, got {value!r}")
    return float(value)


def _whole(spec: Mapping[str, Any], key: str, default: int) -> int:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise errors.InvalidInputError(f"spec.{key} must be a whole number >= 0, got {value!r}")
    return value


def _settings(spec: Mapping[str, Any]) -> notes.ServiceSettings:
    capacity = _number(spec, "capacityPerReplica", None)
    if capacity <= 0:
        raise errors.InvalidInputError(f"spec.capacityPerReplica must be > 0, got {capacity:g}")
    cold = _number(spec, "coldStartSeconds", notes.DEFAULT_COLD_START_S)
    if cold < 0:
        raise errors.InvalidInputError(f"spec.coldStartSeconds must be >= 0, got {cold:g}")
    lo = _whole(spec, "minReplicas", notes.DEFAULT_MIN_REPLICAS)
    hi = _whole(spec, "maxReplicas", notes.DEFAULT_MAX_REPLICAS)
    if hi < lo:
        raise errors.InvalidInputError(f"spec.maxReplicas ({hi}) is below spec.minReplicas ({lo})")
    query = spec.get("demandQuery")
    if query is not None and not isinstance(query, str):
        raise errors.InvalidInputError(f"spec.demandQuery must be a string, got {query!r}")
    return notes.ServiceSettings(
        capacity_rps=capacity,
        cold_start_s=cold,
        min_replicas=lo,
        max_replicas=hi,
        demand_query=(query or "").strip() or None,
    )


def _mapping(value: object) -> Mapping[str, Any]:
    """A JSON object, or {} for anything else (a malformed object never raises here)."""
    return cast(Mapping[str, Any], value) if isinstance(value, dict) else {}


def spec_of(raw: ModelService) -> Spec:
    """Read one ModelService; a spec kopilot cannot read is kept, with why (`invalid`)."""
    meta = _mapping(raw.get("metadata"))
    spec = _mapping(raw.get("spec"))
    ref = _mapping(spec.get("targetRef"))
    conditions = _mapping(raw.get("status")).get("conditions")
    ready = next(
        (
            cast(Condition, c)
            for c in (conditions if isinstance(conditions, list) else [])
            if isinstance(c, dict) and c.get("type") == READY
        ),
        None,
    )
    invalid = None
    settings = None
    try:
        settings = _settings(spec)
    except errors.InvalidInputError as e:
        invalid = str(e)
    generation = meta.get("generation", 0)
    kind, target = ref.get("kind"), ref.get("name")
    if kind not in converting.WORKLOAD_KINDS or not isinstance(target, str) or not target:
        invalid = invalid or (
            f"spec.targetRef must name a Deployment or StatefulSet, got {dict(ref)!r}"
        )
    return Spec(
        namespace=str(meta.get("namespace", "default")),
        name=str(meta.get("name", "")),
        generation=generation if isinstance(generation, int) else 0,
        target_kind=str(kind or ""),
        target_name=str(target or ""),
        settings=settings,
        invalid=invalid,
        ready=ready,
    )


def resolve(
    specs: Iterable[Spec], workloads: Mapping[tuple[str, str], converting.WorkloadInfo]
) -> tuple[dict[str, Spec], dict[str, Verdict]]:
    """Which ModelService manages which workload (by `namespace/name` of the target), and the
    verdict on every ModelService (by its own key). `workloads` is keyed (kind, namespace/name)."""
    managing: dict[str, Spec] = {}
    verdicts: dict[str, Verdict] = {}
    for spec in sorted(specs, key=lambda s: s.key):
        what = f"{spec.target_kind} {spec.target_key}"
        if spec.invalid is not None or spec.settings is None:
            verdicts[spec.key] = Verdict(
                usable=False,
                reason="InvalidSpec",
                message=f"{spec.invalid}; fix the spec (kubectl explain modelservice.spec)",
            )
            continue
        found = workloads.get((spec.target_kind, spec.target_key))
        if found is None:
            verdicts[spec.key] = Verdict(
                usable=False,
                reason="TargetNotFound",
                message=f"{what} does not exist; create it or fix spec.targetRef",
            )
            continue
        owner = managing.get(spec.target_key)
        if owner is not None:
            verdicts[spec.key] = Verdict(
                usable=False,
                reason="TargetConflict",
                message=f"ModelService {owner.key} already manages {what}; delete one of them",
            )
            continue
        managing[spec.target_key] = spec
        s = spec.settings
        also = " (its kopilot.io annotations are ignored)" if found.annotated else ""
        verdicts[spec.key] = Verdict(
            usable=True,
            reason="Managed",
            message=(
                f"kopilot scales {what} between {s.min_replicas} and {s.max_replicas} replicas "
                f"at {s.capacity_rps:g} req/s each{also}"
            ),
        )
    return managing, verdicts


def status_patch(spec: Spec, verdict: Verdict, now: float) -> dict[str, Any] | None:
    """The merge patch that writes `verdict` on the object's status; None when it already says
    so (no write every cycle). The transition time moves only when the status flips."""
    status = "True" if verdict.usable else "False"
    old = spec.ready
    if (
        old is not None
        and old.get("status") == status
        and old.get("reason") == verdict.reason
        and old.get("message") == verdict.message
        and old.get("observedGeneration") == spec.generation
    ):
        return None
    since = old.get("lastTransitionTime") if old and old.get("status") == status else None
    condition: Condition = {
        "type": READY,
        "status": status,
        "reason": verdict.reason,
        "message": notes.clip(verdict.message),
        "observedGeneration": spec.generation,
        "lastTransitionTime": since or converting.rfc3339(now),
    }
    return {"status": {"observedGeneration": spec.generation, "conditions": [condition]}}
