"""Admission control: what the server lets in before it does any work for a request.

Two budgets, both answered at once with 429 and a `Retry-After` when spent (the client's request
was fine; the server is busy):
- `Admission`: detection requests being handled (read, decoded, queued, run), at most the
  batching queue plus one running batch. A burst beyond it is refused on arrival, before its
  body is read or decoded, so refusals never wait behind the work they would add to.
- `BodyBudget`: body bytes held by all requests still being read. A declared `Content-Length`
  is reserved whole before reading; a chunked body reserves each chunk as it arrives. So many
  slow or unfinished uploads together hold at most the budget, however many connections.
"""

from __future__ import annotations

import dataclasses


class Admission:
    """Counts requests let in; `try_enter` is False when `limit` are already in."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"admission needs a limit of at least 1, not {limit}")
        self.limit = limit
        self._inside = 0

    @property
    def inside(self) -> int:
        return self._inside

    def try_enter(self) -> bool:
        if self._inside >= self.limit:
            return False
        self._inside += 1
        return True

    def leave(self) -> None:
        if self._inside <= 0:
            raise RuntimeError("Admission.leave() without a matching try_enter()")
        self._inside -= 1


class BodyBudget:
    """Bytes reserved by bodies being read, at most `limit` in all."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"the body budget needs a limit of at least 1 byte, not {limit}")
        self.limit = limit
        self._held = 0

    @property
    def held(self) -> int:
        return self._held

    def claim(self) -> Claim:
        """A claim on this budget for one request; `release` it when the request is done."""
        return Claim(budget=self)

    def _reserve(self, size: int) -> bool:
        if self._held + size > self.limit:
            return False
        self._held += size
        return True

    def _return(self, size: int) -> None:
        self._held -= size


@dataclasses.dataclass(slots=True, kw_only=True)
class Claim:
    """One request's share of a `BodyBudget`."""

    budget: BodyBudget
    held: int = 0

    def reserve(self, size: int) -> bool:
        """Grow this claim to `size` bytes in all; False (and no change) if the budget is spent."""
        extra = size - self.held
        if extra <= 0:
            return True
        if not self.budget._reserve(extra):
            return False
        self.held = size
        return True

    def release(self) -> None:
        self.budget._return(self.held)
        self.held = 0
