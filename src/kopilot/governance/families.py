"""Families: the groups of policies `kopilot run` switches on and bounds, one entry each.

A family is one job of the autopilot in the live loop (scaling, node readiness, health, ...). The
policy file's `families:` section switches each one on or off and bounds it:

```yaml
families:
  scaling:   {enabled: true}
  readiness: {enabled: true}
  health:    {enabled: true, max_actions: 20, require_approval: [Restart, Cordon]}
  mig:       {enabled: true, require_approval: [Repartition]}
  idle:      {enabled: true, idle_for_s: 3600}
  rightsizing: {enabled: true, every_s: 21600}
```

- `enabled`: a family that is off does not run at all (its policies are not asked to decide), and
  the governor refuses any action of it that still arrives (a person's approval queued before it
  was switched off, say).
- `max_actions`: approved actions of the family per governor window (`window_s`), on top of the
  per-kind and per-target limits.
- `require_approval`: the family's action kinds that wait for a person, on top of the top-level
  `require_approval`. By default a family's disruptive kinds (`DISRUPTIVE`) need approval: a
  health finding never restarts a pod or drains a node on its own until a person says it may.

An action belongs to the family of the policy that proposed it (`Action.policy`, see `POLICIES`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

SCALING = "scaling"
READINESS = "readiness"
HEALTH = "health"
MIG = "mig"
IDLE = "idle"
RIGHTSIZING = "rightsizing"

POLICIES: Mapping[str, str] = {
    "kopilot": SCALING,
    "node-readiness": READINESS,
    "health.playbooks": HEALTH,
    "scheduling/mig-repartition": MIG,
    "cost/idle-gpus": IDLE,
    "cost/rightsizing": RIGHTSIZING,
}
"""Which family each policy (its `name`, copied into `Action.policy`) belongs to."""

DISRUPTIVE: Mapping[str, frozenset[str]] = {
    SCALING: frozenset(),
    # Readiness cordons nodes that are already NotReady (nothing runs well there): unchanged
    # behaviour, no approval by default; its evictions, if any, still respect the PDBs.
    READINESS: frozenset(),
    # A restart evicts a serving pod; a cordon from health may drain a node with a failing GPU.
    HEALTH: frozenset({"Restart", "Cordon"}),
    # A new MIG layout evicts the node's GPU pods and restarts its GPUs (docs/live-families.md).
    MIG: frozenset({"Repartition"}),
    # Scaling an idle service to zero is what the family is for, within the service's own min.
    IDLE: frozenset(),
    # Rightsizing only recommends (Events); nothing it proposes changes the cluster.
    RIGHTSIZING: frozenset(),
}
"""Per family: the action kinds that need a person's approval unless the policy file says otherwise."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FamilyRails:
    """One family's switch and bounds (see the module docstring)."""

    enabled: bool = True
    max_actions: int | None = None
    """Approved actions of this family per governor window (None: only the other limits)."""
    require_approval: frozenset[str] = frozenset()


def defaults() -> dict[str, FamilyRails]:
    """Every known family on, its disruptive kinds behind a person's approval."""
    return {name: FamilyRails(require_approval=kinds) for name, kinds in DISRUPTIVE.items()}


def family_of(policy: str) -> str | None:
    """The family of the policy that proposed an action; None for a policy in no family."""
    return POLICIES.get(policy)
