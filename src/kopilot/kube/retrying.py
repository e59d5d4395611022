"""Retry temporary API failures with capped, jittered exponential backoff; never permanent ones.

A 409 is retried only when the call re-reads the object itself (`conflicts=True`): retrying a
write built from a stale read would just conflict again. A permanent error is raised at once,
so the loop reports it and moves on instead of hammering the API server.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from kopilot.kits import clocks
from kopilot.kube import failures
from kopilot.model import errors

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    attempts: int = 5
    """Tries in total, the first included."""
    base_s: float = 0.2
    max_s: float = 5.0


class Retrier:
    """Runs API calls, retrying what may go away; the clock and the jitter source are injected."""

    def __init__(
        self, clock: clocks.Clock, rng: random.Random, backoff: Backoff = Backoff()
    ) -> None:
        self._clock = clock
        self._rng = rng
        self.backoff = backoff
        self.retries = 0
        """Retries made so far (for the exporter and for tests)."""

    def call(self, what: str, fn: Callable[[], T], *, conflicts: bool = False) -> T:
        """`fn()`, retried on temporary failures; raises the classified `failures.KubeError`."""
        b = self.backoff
        for attempt in range(1, b.attempts + 1):
            try:
                return fn()
            except Exception as exc:  # only API/transport errors are classified; others re-raise
                try:
                    err = failures.classify(exc, what)
                except TypeError:
                    raise exc from None
                retry = isinstance(err, errors.TemporaryError) and attempt < b.attempts
                if isinstance(err, failures.ConflictError) and not conflicts:
                    retry = False
                if isinstance(err, failures.DisruptionBlockedError):
                    retry = False
                if not retry:
                    raise err from exc
                self.retries += 1
                self._clock.sleep(self.delay(attempt, err))
        raise AssertionError("unreachable")  # pragma: no cover

    def delay(self, attempt: int, err: failures.KubeError) -> float:
        """Seconds before try `attempt + 1`: the server's Retry-After, else jittered backoff."""
        b = self.backoff
        if isinstance(err, failures.ThrottledError):
            return min(b.max_s, float(err.retry_after))
        ceiling = min(b.max_s, b.base_s * 2.0 ** (attempt - 1))
        return ceiling * (0.5 + 0.5 * self._rng.random())
