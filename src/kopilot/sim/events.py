"""A deterministic event queue on virtual time (as in SimPy).

Events sit on a heap of (time, priority, sequence, payload); the sequence number breaks ties in
insertion order, so two runs with the same inputs pop events in exactly the same order.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(order=True, frozen=True, slots=True)
class Event(Generic[T]):
    time: float
    priority: int
    seq: int
    payload: T = field(compare=False)


class EventQueue(Generic[T]):
    def __init__(self) -> None:
        self._heap: list[Event[T]] = []
        self._counter = itertools.count()

    def push(self, time: float, payload: T, *, priority: int = 0) -> None:
        heapq.heappush(self._heap, Event(time, priority, next(self._counter), payload))

    def pop(self) -> Event[T]:
        return heapq.heappop(self._heap)

    def peek_time(self) -> float | None:
        return self._heap[0].time if self._heap else None

    def __len__(self) -> int:
        return len(self._heap)
