"""The shape every policy has: `decide(snapshot, state, now) -> Decision(actions, state)`.

A policy is pure: it reads the snapshot and its own previous state, and returns proposed actions
plus its next state. No I/O, no wall clock, no global randomness. That makes it testable,
replayable and benchmarkable, and lets guardrails wrap it from outside.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from kopilot.model import actions, cluster

S = TypeVar("S")


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision(Generic[S]):
    actions: tuple[actions.Action, ...]
    state: S


class Policy(Protocol[S]):
    """A pure decision function with a name and an initial state."""

    @property
    def name(self) -> str: ...

    def initial_state(self) -> S: ...

    def decide(self, snapshot: cluster.ClusterSnapshot, state: S, now: float) -> Decision[S]: ...
