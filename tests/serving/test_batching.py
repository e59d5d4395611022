"""The dynamic batcher: batches form up to the limit, outputs go to their requests, back-pressure,
failures stay in their batch, and closing serves what is queued.

The runner is a working fake of `BatchRunner` that can be held (a threading.Event) so requests
pile up deterministically, without timing assertions.
"""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from kopilot.serving import batching, errors, settings


class HeldRunner:
    """Returns each image's pixel sum; holds every batch until `release` is set."""

    def __init__(self, *, fail_on: float | None = None) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.batches: list[int] = []
        self.fail_on = fail_on

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.started.set()
        self.release.wait(timeout=10)
        self.batches.append(batch.shape[0])
        sums = batch.reshape(batch.shape[0], -1).sum(axis=1)
        if self.fail_on is not None and self.fail_on in sums:
            raise RuntimeError("the model fell over")
        return sums[:, None].astype(np.float32)


def image(value: float) -> np.ndarray:
    return np.full((1, 2, 2), value, np.float32)  # pixel sum = 4 * value


def config(**overrides: float) -> settings.BatchingSettings:
    values = {"max_batch_size": 4, "max_queue_delay_s": 0.0, "max_queue_size": 16} | overrides
    return settings.BatchingSettings(**values)  # type: ignore[arg-type]


async def wait_started(runner: HeldRunner) -> None:
    await asyncio.to_thread(runner.started.wait, 10)


def test_requests_queued_behind_a_running_batch_form_full_batches() -> None:
    async def scenario() -> None:
        runner = HeldRunner()
        batcher = batching.DynamicBatcher(runner, config=config())
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(image(0)))
        await wait_started(runner)  # batch [0] is running and held
        rest = [asyncio.ensure_future(batcher.submit(image(v))) for v in range(1, 10)]
        await asyncio.sleep(0)
        assert batcher.depth == 9
        runner.release.set()
        outcomes = await asyncio.gather(first, *rest)
        assert runner.batches == [1, 4, 4, 1]
        assert [float(o.output[0]) for o in outcomes] == [4.0 * v for v in range(10)]
        assert [o.batch_size for o in outcomes] == [1, 4, 4, 4, 4, 4, 4, 4, 4, 1]
        await batcher.close()

    asyncio.run(scenario())


def test_batch_size_one_runs_requests_one_at_a_time() -> None:
    async def scenario() -> None:
        runner = HeldRunner()
        runner.release.set()
        batcher = batching.DynamicBatcher(runner, config=config(max_batch_size=1))
        batcher.start()
        await asyncio.gather(*(batcher.submit(image(v)) for v in range(5)))
        assert runner.batches == [1, 1, 1, 1, 1]
        await batcher.close()

    asyncio.run(scenario())


def test_a_full_queue_refuses_at_once_instead_of_growing() -> None:
    async def scenario() -> None:
        runner = HeldRunner()
        batcher = batching.DynamicBatcher(runner, config=config(max_queue_size=3))
        batcher.start()
        running = asyncio.ensure_future(batcher.submit(image(0)))
        await wait_started(runner)
        queued = [asyncio.ensure_future(batcher.submit(image(v))) for v in (1, 2, 3)]
        await asyncio.sleep(0)
        with pytest.raises(errors.OverloadedError, match="queue is full"):
            await batcher.submit(image(4))
        runner.release.set()
        await asyncio.gather(running, *queued)  # the accepted ones are all served
        await batcher.close()

    asyncio.run(scenario())


def test_a_failing_batch_fails_only_its_requests_and_the_batcher_goes_on() -> None:
    async def scenario() -> None:
        runner = HeldRunner(fail_on=4.0 * 2)
        batcher = batching.DynamicBatcher(runner, config=config(max_batch_size=2))
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(image(0)))
        await wait_started(runner)
        doomed = [asyncio.ensure_future(batcher.submit(image(v))) for v in (1, 2)]
        fine = [asyncio.ensure_future(batcher.submit(image(v))) for v in (3, 4)]
        await asyncio.sleep(0)
        runner.release.set()
        await first
        for task in doomed:
            with pytest.raises(errors.InferenceError, match="the model fell over"):
                await task
        assert [float(o.output[0]) for o in await asyncio.gather(*fine)] == [12.0, 16.0]
        await batcher.close()

    asyncio.run(scenario())


def test_close_serves_the_queue_then_refuses_new_requests() -> None:
    async def scenario() -> None:
        runner = HeldRunner()
        batcher = batching.DynamicBatcher(runner, config=config(max_queue_delay_s=30.0))
        batcher.start()
        pending = [asyncio.ensure_future(batcher.submit(image(v))) for v in range(3)]
        await asyncio.sleep(0)
        runner.release.set()
        closing = asyncio.ensure_future(batcher.close())  # must not wait out the 30 s delay
        outcomes = await asyncio.wait_for(asyncio.gather(*pending), timeout=10)
        await asyncio.wait_for(closing, timeout=10)
        assert sorted(float(o.output[0]) for o in outcomes) == [0.0, 4.0, 8.0]
        with pytest.raises(errors.NotReadyError):
            await batcher.submit(image(9))

    asyncio.run(scenario())


def test_a_request_whose_client_left_is_skipped() -> None:
    async def scenario() -> None:
        runner = HeldRunner()
        batcher = batching.DynamicBatcher(runner, config=config())
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(image(0)))
        await wait_started(runner)
        gone = asyncio.ensure_future(batcher.submit(image(1)))
        stays = asyncio.ensure_future(batcher.submit(image(2)))
        await asyncio.sleep(0)
        gone.cancel()
        runner.release.set()
        await first
        assert float((await stays).output[0]) == 8.0
        assert runner.batches == [1, 1]
        await batcher.close()

    asyncio.run(scenario())
