"""The governance policy file: people's guardrails in YAML, checked against a schema.

```yaml
dry_run: false
allowed_namespaces: [ml-prod, ml-staging]   # omit for all
allowed_kinds: [Scale, Alert, Cordon]       # omit for all
window_s: 600
max_per_kind: {Scale: 100, Cordon: 2, Restart: 5}
max_per_target: 20
cooldown_s: {Restart: 600, Cordon: 900}
max_cordoned_nodes: 2
max_disrupted_fraction: 0.25
max_scale_step: 10
require_approval: [Cordon, Repartition]
approval_ttl_s: 3600
families:                                   # omit a family for its defaults (on)
  scaling: {enabled: true}
  readiness: {enabled: true}
  health:                                   # disruptive kinds need approval by default
    enabled: true
    max_actions: 20                         # per window_s, on top of the other limits
    require_approval: [Restart, Cordon]     # [] lets health restart and drain on its own
    leak_horizon_s: 7200                    # restart a leaking pod this long before its limit
    xid_count: 3                            # XID errors within xid_window_s that fail a GPU
    xid_window_s: 600
  mig: {enabled: true, require_approval: [Repartition]}   # the default: a person approves
  idle:                                     # scale GPU services idle this long to zero
    idle_for_s: 3600
    busy_below: 0.05                        # GPU utilisation (0..1) that counts as idle
    remind_s: 21600                         # how often to repeat a Recommend (min > 0)
  rightsizing: {every_s: 21600, tolerance: 0.2}
```

A bad file is rejected with the field and the reason; `PolicyHolder.reload` then keeps the policy
that was in force.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pydantic

from kopilot.cost import idling, resizing
from kopilot.governance import families, guardrails
from kopilot.health import monitors
from kopilot.kits import yamlfiles
from kopilot.model import actions, errors

KIND_NAMES = tuple(k.kind for k in actions.KINDS)
_DEFAULTS = guardrails.Guardrails()


def _check_kinds(v: list[str] | None) -> list[str] | None:
    for kind in v or []:
        if kind not in KIND_NAMES:
            raise ValueError(f"unknown action kind {kind!r}; kinds are {list(KIND_NAMES)}")
    return v


class FamilySchema(pydantic.BaseModel):
    """One family's switch and bounds (`kopilot.governance.families`)."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    max_actions: int | None = pydantic.Field(default=None, ge=0)
    require_approval: list[str] | None = None
    """None: the family's disruptive kinds (`families.DISRUPTIVE`)."""

    @pydantic.field_validator("require_approval")
    @classmethod
    def _known_kinds(cls, v: list[str] | None) -> list[str] | None:
        return _check_kinds(v)


_MONITOR = monitors.MonitorSettings()


class HealthFamilySchema(FamilySchema):
    """The health family: the switch and bounds, plus the detectors' user-facing knobs."""

    leak_horizon_s: float = pydantic.Field(default=_MONITOR.leak_horizon_s, gt=0)
    xid_count: float = pydantic.Field(default=_MONITOR.xid_count, gt=0)
    xid_window_s: float = pydantic.Field(default=_MONITOR.xid_window_s, gt=0)


_IDLE = idling.IdlePolicy()
_SIZING = resizing.RightsizingPolicy()


class IdleFamilySchema(FamilySchema):
    """The idle-GPU family: the switch and bounds, plus what counts as idle."""

    idle_for_s: float = pydantic.Field(default=_IDLE.idle_for_s, gt=0)
    busy_below: float = pydantic.Field(default=_IDLE.threshold, gt=0, le=1)
    remind_s: float = pydantic.Field(default=_IDLE.remind_s, gt=0)


class RightsizingFamilySchema(FamilySchema):
    """The rightsizing family: the switch and bounds, plus how often and how far off."""

    every_s: float = pydantic.Field(default=_SIZING.every_s, gt=0)
    tolerance: float = pydantic.Field(default=_SIZING.tolerance, ge=0)


class FamiliesSchema(pydantic.BaseModel):
    """The `families:` section: one entry per family; an omitted family keeps its defaults."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    scaling: FamilySchema = pydantic.Field(default_factory=FamilySchema)
    readiness: FamilySchema = pydantic.Field(default_factory=FamilySchema)
    health: HealthFamilySchema = pydantic.Field(default_factory=HealthFamilySchema)
    mig: FamilySchema = pydantic.Field(default_factory=FamilySchema)
    idle: IdleFamilySchema = pydantic.Field(default_factory=IdleFamilySchema)
    rightsizing: RightsizingFamilySchema = pydantic.Field(default_factory=RightsizingFamilySchema)


class PolicySchema(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    dry_run: bool = True
    allowed_namespaces: list[str] | None = None
    allowed_kinds: list[str] | None = None
    window_s: float = pydantic.Field(default=_DEFAULTS.window_s, gt=0)
    max_per_kind: dict[str, int] = pydantic.Field(
        default_factory=lambda: dict(_DEFAULTS.max_per_kind)
    )
    max_per_target: int = pydantic.Field(default=_DEFAULTS.max_per_target, ge=0)
    cooldown_s: dict[str, float] = pydantic.Field(
        default_factory=lambda: dict(_DEFAULTS.cooldown_s)
    )
    max_cordoned_nodes: int = pydantic.Field(default=_DEFAULTS.max_cordoned_nodes, ge=0)
    max_disrupted_fraction: float = pydantic.Field(
        default=_DEFAULTS.max_disrupted_fraction, ge=0, le=1
    )
    max_scale_step: int | None = pydantic.Field(default=None, ge=1)
    require_approval: list[str] = pydantic.Field(default_factory=list)
    approval_ttl_s: float = pydantic.Field(default=3600.0, gt=0)
    families: FamiliesSchema = pydantic.Field(default_factory=FamiliesSchema)

    @pydantic.field_validator("allowed_kinds", "require_approval")
    @classmethod
    def _known_kinds(cls, v: list[str] | None) -> list[str] | None:
        for kind in v or []:
            if kind not in KIND_NAMES:
                raise ValueError(f"unknown action kind {kind!r}; kinds are {list(KIND_NAMES)}")
        return v

    @pydantic.field_validator("max_per_kind", "cooldown_s")
    @classmethod
    def _known_keys(cls, v: dict[str, float]) -> dict[str, float]:
        for kind, limit in v.items():
            if kind not in KIND_NAMES:
                raise ValueError(f"unknown action kind {kind!r}; kinds are {list(KIND_NAMES)}")
            if limit < 0:
                raise ValueError(f"{kind}: must be >= 0, got {limit}")
        return v


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    rails: guardrails.Guardrails
    approval_ttl_s: float
    health: monitors.MonitorSettings = _MONITOR
    """The health family's detector settings (its `families.health` knobs)."""
    idle: idling.IdlePolicy = _IDLE
    """The idle-GPU family's policy, with its `families.idle` knobs."""
    rightsizing: resizing.RightsizingPolicy = _SIZING
    """The rightsizing family's policy, with its `families.rightsizing` knobs."""


def _family_rails(name: str, f: FamilySchema) -> families.FamilyRails:
    kinds = f.require_approval
    return families.FamilyRails(
        enabled=f.enabled,
        max_actions=f.max_actions,
        require_approval=frozenset(kinds)
        if kinds is not None
        else families.DISRUPTIVE.get(name, frozenset()),
    )


def from_schema(p: PolicySchema) -> Policy:
    rails = guardrails.Guardrails(
        dry_run=p.dry_run,
        allowed_namespaces=frozenset(p.allowed_namespaces)
        if p.allowed_namespaces is not None
        else None,
        allowed_kinds=frozenset(p.allowed_kinds) if p.allowed_kinds is not None else None,
        window_s=p.window_s,
        max_per_kind={**_DEFAULTS.max_per_kind, **p.max_per_kind},
        max_per_target=p.max_per_target,
        cooldown_s=dict(p.cooldown_s),
        max_cordoned_nodes=p.max_cordoned_nodes,
        max_disrupted_fraction=p.max_disrupted_fraction,
        max_scale_step=p.max_scale_step,
        require_approval=frozenset(p.require_approval),
        families={
            name: _family_rails(name, getattr(p.families, name))
            for name in type(p.families).model_fields
        },
    )
    health = p.families.health
    return Policy(
        rails=rails,
        approval_ttl_s=p.approval_ttl_s,
        health=monitors.MonitorSettings(
            leak_horizon_s=health.leak_horizon_s,
            xid_count=health.xid_count,
            xid_window_s=health.xid_window_s,
        ),
        idle=idling.IdlePolicy(
            threshold=p.families.idle.busy_below,
            idle_for_s=p.families.idle.idle_for_s,
            remind_s=p.families.idle.remind_s,
        ),
        rightsizing=resizing.RightsizingPolicy(
            every_s=p.families.rightsizing.every_s, tolerance=p.families.rightsizing.tolerance
        ),
    )


def parse(text: str, source: str) -> Policy:
    """Parse a policy document; InvalidInputError names the source, the field and the reason."""
    return from_schema(yamlfiles.parse(text, PolicySchema, source=source, what="policy"))


def load(path: Path) -> Policy:
    return from_schema(yamlfiles.load(path, PolicySchema, what="policy"))


def json_schema() -> dict[str, object]:
    """The JSON schema of the policy file (for editors and for `kopilot policy --schema`)."""
    return PolicySchema.model_json_schema()


class PolicyHolder:
    """The policy in force. A reload that fails keeps the old policy and reports why."""

    def __init__(self, path: Path | None, initial: Policy | None = None) -> None:
        self.path = path
        self.policy = initial or from_schema(PolicySchema())
        self.last_error: str | None = None
        if path is not None:
            self.policy = load(path)

    def reload(self) -> bool:
        """Re-read the file; True if the new policy is now in force."""
        if self.path is None:
            return False
        try:
            self.policy = load(self.path)
        except errors.InvalidInputError as e:
            self.last_error = str(e)
            return False
        self.last_error = None
        return True
