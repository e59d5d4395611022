"""The World port: what the loop needs from a cluster, real or simulated."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from kopilot.model import actions, cluster


@dataclass(frozen=True, slots=True, kw_only=True)
class Applied:
    """What happened when a World carried out an action."""

    ok: bool
    detail: str = ""


class World(Protocol):
    """A cluster kopilot can observe and act on."""

    def snapshot(self, now: float) -> cluster.ClusterSnapshot:
        """The cluster as it is at `now`; it does not change afterwards."""
        ...

    def apply(self, action: actions.Action, now: float) -> Applied:
        """Carry out one approved action."""
        ...
