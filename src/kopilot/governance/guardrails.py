"""The rules people set: what kopilot may do, how much, how fast and where."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from kopilot.governance import families as families_


@dataclass(frozen=True, slots=True, kw_only=True)
class Guardrails:
    """Limits the governor enforces. The defaults are the cautious ones: dry-run is on."""

    dry_run: bool = True
    """Record what would be done, touch nothing."""
    allowed_namespaces: frozenset[str] | None = None
    """None allows every namespace; node-level actions have namespace ''."""
    allowed_kinds: frozenset[str] | None = None
    """None allows every action kind."""
    window_s: float = 600.0
    """The sliding window the rate limits count over."""
    max_per_kind: Mapping[str, int] = field(
        default_factory=lambda: {
            "Scale": 1000,
            "Bind": 100000,
            "Repartition": 8,
            "Restart": 10,
            "Cordon": 4,
            "Alert": 50,
            "Recommend": 1000,
        }
    )
    """Approved actions per kind per window."""
    max_per_target: int = 100
    """Approved actions on one target per window."""
    cooldown_s: Mapping[str, float] = field(
        default_factory=lambda: {"Restart": 600.0, "Cordon": 900.0, "Repartition": 1800.0}
    )
    """Minimum time between two approved actions of a kind on the same target."""
    max_cordoned_nodes: int = 2
    """Blast radius: never more nodes cordoned at once (counting already-cordoned nodes)."""
    max_disrupted_fraction: float = 0.25
    """Blast radius: never more than this share of a service's replicas restarted per window."""
    max_scale_step: int | None = None
    """At most this many replicas added or removed by one Scale (None: no limit)."""
    require_approval: frozenset[str] = frozenset()
    """Action kinds that wait for a person (`kopilot approve ID`) instead of running."""
    families: Mapping[str, families_.FamilyRails] = field(default_factory=dict)
    """Per family (scaling, readiness, health, ...): switched on or off, and bounded. Empty here
    (the simulator's governor); the policy file fills it with `families.defaults()`, so `kopilot
    run` always has every family's rails, with or without a file."""
