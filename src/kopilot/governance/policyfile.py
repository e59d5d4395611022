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

The file is read strictly (`StrictSchema`, the base of every section): a boolean is `true` or
`false` (not `"no"`, `0` or `off`), a number is finite (no `.nan`, no `.inf`), and every limit has
a sane upper bound (`BOUNDS`). A bad file is rejected with the field and the reason;
`PolicyHolder.reload` then keeps the policy that was in force. Every reload, accepted or refused,
is written to the audit log with the file's digest, and an accepted one lists what it loosened
(`widenings`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pydantic

from kopilot.cost import idling, resizing
from kopilot.governance import audit, digests, families, guardrails
from kopilot.health import monitors
from kopilot.kits import yamlfiles
from kopilot.model import actions, errors

KIND_NAMES = tuple(k.kind for k in actions.KINDS)
_DEFAULTS = guardrails.Guardrails()
DAY_S = 86400.0
BOUNDS = {
    "window_s": DAY_S,
    "cooldown_s": 7 * DAY_S,
    "approval_ttl_s": 7 * DAY_S,
    "max_per_kind": 1_000_000,
    "max_per_target": 100_000,
    "max_cordoned_nodes": 1000,
    "max_scale_step": 10_000,
}
"""The most a policy file may allow; beyond this a value is a typo or an attack, not a policy."""


class StrictSchema(pydantic.BaseModel):
    """The base of every section of the policy file: unknown fields, a boolean that is not
    `true`/`false`, a number given as text, NaN and infinity are all refused."""

    model_config = pydantic.ConfigDict(
        extra="forbid", frozen=True, strict=True, allow_inf_nan=False
    )


def _check_kinds(v: list[str] | None) -> list[str] | None:
    for kind in v or []:
        if kind not in KIND_NAMES:
            raise ValueError(f"unknown action kind {kind!r}; kinds are {list(KIND_NAMES)}")
    return v


class FamilySchema(StrictSchema):
    """One family's switch and bounds (`kopilot.governance.families`)."""

    enabled: bool = True
    max_actions: int | None = pydantic.Field(default=None, ge=0, le=BOUNDS["max_per_kind"])
    require_approval: list[str] | None = None
    """None: the family's disruptive kinds (`families.DISRUPTIVE`)."""

    @pydantic.field_validator("require_approval")
    @classmethod
    def _known_kinds(cls, v: list[str] | None) -> list[str] | None:
        return _check_kinds(v)


_MONITOR = monitors.MonitorSettings()


class HealthFamilySchema(FamilySchema):
    """The health family: the switch and bounds, plus the detectors' user-facing knobs."""

    leak_horizon_s: float = pydantic.Field(
        default=_MONITOR.leak_horizon_s, gt=0, le=BOUNDS["cooldown_s"]
    )
    xid_count: float = pydantic.Field(default=_MONITOR.xid_count, gt=0, le=1_000_000)
    xid_window_s: float = pydantic.Field(default=_MONITOR.xid_window_s, gt=0, le=DAY_S)


_IDLE = idling.IdlePolicy()
_SIZING = resizing.RightsizingPolicy()


class IdleFamilySchema(FamilySchema):
    """The idle-GPU family: the switch and bounds, plus what counts as idle."""

    idle_for_s: float = pydantic.Field(default=_IDLE.idle_for_s, gt=0, le=7 * DAY_S)
    busy_below: float = pydantic.Field(default=_IDLE.threshold, gt=0, le=1)
    remind_s: float = pydantic.Field(default=_IDLE.remind_s, gt=0, le=7 * DAY_S)


class RightsizingFamilySchema(FamilySchema):
    """The rightsizing family: the switch and bounds, plus how often and how far off."""

    every_s: float = pydantic.Field(default=_SIZING.every_s, gt=0, le=7 * DAY_S)
    tolerance: float = pydantic.Field(default=_SIZING.tolerance, ge=0, le=100)


class FamiliesSchema(StrictSchema):
    """The `families:` section: one entry per family; an omitted family keeps its defaults."""

    scaling: FamilySchema = pydantic.Field(default_factory=FamilySchema)
    readiness: FamilySchema = pydantic.Field(default_factory=FamilySchema)
    health: HealthFamilySchema = pydantic.Field(default_factory=HealthFamilySchema)
    mig: FamilySchema = pydantic.Field(default_factory=FamilySchema)
    idle: IdleFamilySchema = pydantic.Field(default_factory=IdleFamilySchema)
    rightsizing: RightsizingFamilySchema = pydantic.Field(default_factory=RightsizingFamilySchema)


class PolicySchema(StrictSchema):
    dry_run: bool = True
    allowed_namespaces: list[str] | None = None
    allowed_kinds: list[str] | None = None
    window_s: float = pydantic.Field(default=_DEFAULTS.window_s, gt=0, le=BOUNDS["window_s"])
    max_per_kind: dict[str, int] = pydantic.Field(
        default_factory=lambda: dict(_DEFAULTS.max_per_kind)
    )
    max_per_target: int = pydantic.Field(
        default=_DEFAULTS.max_per_target, ge=0, le=BOUNDS["max_per_target"]
    )
    cooldown_s: dict[str, float] = pydantic.Field(
        default_factory=lambda: dict(_DEFAULTS.cooldown_s)
    )
    max_cordoned_nodes: int = pydantic.Field(
        default=_DEFAULTS.max_cordoned_nodes, ge=0, le=BOUNDS["max_cordoned_nodes"]
    )
    max_disrupted_fraction: float = pydantic.Field(
        default=_DEFAULTS.max_disrupted_fraction, ge=0, le=1
    )
    max_scale_step: int | None = pydantic.Field(default=None, ge=1, le=BOUNDS["max_scale_step"])
    require_approval: list[str] = pydantic.Field(default_factory=list)
    approval_ttl_s: float = pydantic.Field(default=3600.0, gt=0, le=BOUNDS["approval_ttl_s"])
    families: FamiliesSchema = pydantic.Field(default_factory=FamiliesSchema)

    @pydantic.field_validator("allowed_kinds", "require_approval")
    @classmethod
    def _known_kinds(cls, v: list[str] | None) -> list[str] | None:
        return _check_kinds(v)

    @pydantic.field_validator("max_per_kind", "cooldown_s")
    @classmethod
    def _known_keys(cls, v: dict[str, float], info: pydantic.ValidationInfo) -> dict[str, float]:
        most = BOUNDS[str(info.field_name)]
        for kind, limit in v.items():
            if kind not in KIND_NAMES:
                raise ValueError(f"unknown action kind {kind!r}; kinds are {list(KIND_NAMES)}")
            if not 0 <= limit <= most:
                raise ValueError(f"{kind}: must be between 0 and {most:g}, got {limit}")
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
    return from_schema(
        yamlfiles.parse(text, PolicySchema, source=source, what="policy", core_booleans=True)
    )


def load(path: Path) -> Policy:
    return read(path)[0]


def read(path: Path) -> tuple[Policy, str]:
    """The policy in `path` and the digest of the bytes it was parsed from."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise errors.InvalidInputError(f"policy {path}: cannot read it ({e.strerror})") from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise errors.InvalidInputError(f"policy {path}: not UTF-8 text ({e.reason})") from e
    return parse(text, str(path)), digests.text_digest(raw)


def json_schema() -> dict[str, object]:
    """The JSON schema of the policy file (for editors and for `kopilot policy --schema`)."""
    return PolicySchema.model_json_schema()


def widenings(old: Policy, new: Policy) -> list[str]:
    """What `new` allows that `old` did not, one line per loosened limit (empty: nothing)."""
    a, b = old.rails, new.rails
    out: list[str] = []
    if a.dry_run and not b.dry_run:
        out.append("dry_run: on -> off (kopilot now acts)")
    for name, was, now in (
        ("allowed_namespaces", a.allowed_namespaces, b.allowed_namespaces),
        ("allowed_kinds", a.allowed_kinds, b.allowed_kinds),
    ):
        if was is not None and (now is None or not now <= was):
            out.append(f"{name}: {sorted(was)} -> {'all' if now is None else sorted(now)}")
    if dropped := sorted(a.require_approval - b.require_approval):
        out.append(f"require_approval: no longer for {dropped}")
    for name, was_n, now_n in (
        ("max_per_target", a.max_per_target, b.max_per_target),
        ("max_cordoned_nodes", a.max_cordoned_nodes, b.max_cordoned_nodes),
        ("max_disrupted_fraction", a.max_disrupted_fraction, b.max_disrupted_fraction),
        ("approval_ttl_s", old.approval_ttl_s, new.approval_ttl_s),
        *((f"max_per_kind.{k}", a.max_per_kind.get(k, 0), n) for k, n in b.max_per_kind.items()),
    ):
        if now_n > was_n:
            out.append(f"{name}: {was_n:g} -> {now_n:g}")
    if b.window_s < a.window_s:
        out.append(f"window_s: {a.window_s:g} -> {b.window_s:g} (rate limits count less)")
    for kind in sorted({*a.cooldown_s, *b.cooldown_s}):
        was_c, now_c = a.cooldown_s.get(kind, 0.0), b.cooldown_s.get(kind, 0.0)
        if now_c < was_c:
            out.append(f"cooldown_s.{kind}: {was_c:g} -> {now_c:g}")
    if a.max_scale_step is not None and (b.max_scale_step or math.inf) > a.max_scale_step:
        out.append(f"max_scale_step: {a.max_scale_step} -> {b.max_scale_step or 'no limit'}")
    return out


class PolicyHolder:
    """The policy in force. A reload that fails keeps the old policy and reports why."""

    def __init__(self, path: Path | None, initial: Policy | None = None) -> None:
        self.path = path
        self.policy = initial or from_schema(PolicySchema())
        self.digest: str | None = None
        """The digest of the file the policy in force was read from."""
        self.last_error: str | None = None
        self.last_widened: tuple[str, ...] = ()
        if path is not None:
            self.policy, self.digest = read(path)

    def record(self, log: audit.AuditLog, now: float) -> None:
        """Write the policy in force to the audit log (at start-up)."""
        if self.path is not None:
            log.note(
                time=now,
                outcome="policy-loaded",
                target=str(self.path),
                summary=f"policy {self.path} ({self.digest}) in force",
                detail={"digest": self.digest, "file": str(self.path)},
            )

    def reload(self, log: audit.AuditLog | None = None, now: float = 0.0) -> bool:
        """Re-read the file; True if the new policy is now in force. With a `log`, the reload,
        accepted or refused, is written there with the file's digest and what it loosened."""
        if self.path is None:
            return False
        where = str(self.path)
        try:
            new, digest = read(self.path)
        except errors.InvalidInputError as e:
            self.last_error = str(e)
            if log is not None:
                log.note(
                    time=now,
                    outcome="policy-refused",
                    target=where,
                    summary=f"policy not reloaded, the one in force ({self.digest}) stays: {e}",
                    detail={"file": where, "error": str(e), "in_force": self.digest},
                )
            return False
        self.last_widened = tuple(widenings(self.policy, new))
        self.policy, self.digest, self.last_error = new, digest, None
        if log is not None:
            loosened = f"; loosened: {'; '.join(self.last_widened)}" if self.last_widened else ""
            log.note(
                time=now,
                outcome="policy-widened" if self.last_widened else "policy-reloaded",
                target=where,
                summary=f"policy {where} ({digest}) reloaded{loosened}",
                detail={"file": where, "digest": digest, "widened": list(self.last_widened)},
            )
        return True
