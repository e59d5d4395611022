"""Dynamic batching as Triton's dynamic batcher does it, with back-pressure.

Requests wait in a bounded queue. One worker takes the oldest request and keeps the batch open
until it holds `max_batch_size` requests or `max_queue_delay_s` has passed since that oldest
request arrived, whichever comes first; then it runs the batch on a single inference thread.
While a batch runs, new requests queue up and form the next one, so under load batches fill
without waiting. A full queue refuses new requests at once (`OverloadedError`, HTTP 429) instead
of letting memory grow; `close` stops taking requests and finishes the queued ones.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np
import numpy.typing as npt

from kopilot.serving import errors, settings

FloatArray = npt.NDArray[np.float32]


class BatchRunner(Protocol):
    """Runs a stacked `[n, ...]` batch and returns one output row per input row."""

    def run(self, batch: FloatArray) -> FloatArray: ...


class BatchObserver(Protocol):
    """Told about every batch; `instruments.Instruments` turns this into Prometheus metrics."""

    def batch_done(self, *, size: int, inference_s: float, queue_s: list[float]) -> None: ...

    def batch_failed(self, *, size: int) -> None: ...

    def queue_depth(self, depth: int) -> None: ...


class NullObserver:
    """An observer that records nothing (for tests and benchmarks of the batcher alone)."""

    def batch_done(self, *, size: int, inference_s: float, queue_s: list[float]) -> None:
        return None

    def batch_failed(self, *, size: int) -> None:
        return None

    def queue_depth(self, depth: int) -> None:
        return None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """One request's share of a batch: its output row and how it was served."""

    output: FloatArray
    batch_size: int
    queue_s: float
    inference_s: float


@dataclasses.dataclass(slots=True)
class _Pending:
    tensor: FloatArray
    enqueued: float
    future: asyncio.Future[Outcome]


class DynamicBatcher:
    """Collects single-image requests into batches for `runner`.

    Use from one event loop: `start()`, then `await submit(tensor)` from request handlers, then
    `await close()`. `timer` is a monotonic clock in seconds (injected for tests).
    """

    def __init__(
        self,
        runner: BatchRunner,
        *,
        config: settings.BatchingSettings,
        observer: BatchObserver | None = None,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        if config.max_batch_size < 1 or config.max_queue_size < 1 or config.max_queue_delay_s < 0:
            raise ValueError(f"invalid batching settings: {config}")
        self._runner = runner
        self._config = config
        self._observer: BatchObserver = observer or NullObserver()
        self._timer = timer
        self._queue: collections.deque[_Pending] = collections.deque()
        self._arrived = asyncio.Event()
        self._closing = False
        self._worker: asyncio.Task[None] | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="kopilot-inference"
        )

    @property
    def depth(self) -> int:
        """Requests waiting for a batch (not counting the batch running now)."""
        return len(self._queue)

    def start(self) -> None:
        """Start the batching worker on the running event loop."""
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(
                self._work(), name="kopilot-batcher"
            )

    async def submit(self, tensor: FloatArray) -> Outcome:
        """Queue one image tensor and wait for its output row.

        Raises `OverloadedError` when the queue is full and `NotReadyError` once closing.
        """
        if self._closing or self._worker is None:
            raise errors.NotReadyError("the server is shutting down", retry_after=1.0)
        if len(self._queue) >= self._config.max_queue_size:
            raise errors.OverloadedError(
                f"the batching queue is full ({self._config.max_queue_size} requests waiting)",
                retry_after=max(0.05, self._config.max_queue_delay_s * 4),
            )
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(tensor=tensor, enqueued=self._timer(), future=future))
        self._observer.queue_depth(len(self._queue))
        self._arrived.set()
        return await future

    async def close(self) -> None:
        """Stop taking requests, serve every queued one, then stop the worker."""
        self._closing = True
        self._arrived.set()
        if self._worker is not None:
            await self._worker
        self._executor.shutdown(wait=True)

    async def _next_batch(self) -> list[_Pending]:
        """Wait for the oldest request, then fill the batch until it is full or its delay ends."""
        while not self._queue:
            if self._closing:
                return []
            self._arrived.clear()
            await self._arrived.wait()
        deadline = self._queue[0].enqueued + self._config.max_queue_delay_s
        limit = self._config.max_batch_size
        while len(self._queue) < limit and not self._closing:
            remaining = deadline - self._timer()
            if remaining <= 0:
                break
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                break
        batch: list[_Pending] = []
        while self._queue and len(batch) < limit:
            pending = self._queue.popleft()
            if not pending.future.done():  # a client that went away cancelled its future
                batch.append(pending)
        self._observer.queue_depth(len(self._queue))
        return batch

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            if not batch:
                if self._closing and not self._queue:
                    return
                continue
            started = self._timer()
            stacked = np.stack([p.tensor for p in batch])
            try:
                outputs = await loop.run_in_executor(self._executor, self._runner.run, stacked)
            except Exception as e:  # a fault fails this batch's requests, never the worker
                self._fail(batch, e)
                continue
            inference_s = self._timer() - started
            queue_s = [started - p.enqueued for p in batch]
            self._observer.batch_done(size=len(batch), inference_s=inference_s, queue_s=queue_s)
            for i, p in enumerate(batch):
                if not p.future.done():
                    p.future.set_result(
                        Outcome(
                            output=outputs[i],
                            batch_size=len(batch),
                            queue_s=queue_s[i],
                            inference_s=inference_s,
                        )
                    )

    def _fail(self, batch: list[_Pending], cause: Exception) -> None:
        fault = cause
        if not isinstance(cause, errors.InferenceError):
            fault = errors.InferenceError(f"inference failed on a batch of {len(batch)}: {cause!r}")
            fault.__cause__ = cause
        self._observer.batch_failed(size=len(batch))
        for p in batch:
            if not p.future.done():
                p.future.set_exception(fault)
