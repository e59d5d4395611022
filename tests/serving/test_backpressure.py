"""Back-pressure over HTTP: when the batching queue is full the server answers 429 at once (with
Retry-After) instead of holding the request, and the requests it accepted still succeed.

The real server and model; only the model's run is held on an Event so the queue fills
deterministically (no timing assertions)."""

from __future__ import annotations

import asyncio
import itertools
import pathlib
import threading

import httpx
import numpy as np

from kopilot.serving import detectors, settings
from tests.serving import images_util, servers


def test_a_full_queue_answers_429_and_accepted_requests_complete(
    tiny_classic: pathlib.Path,
) -> None:
    release = threading.Event()

    def held_loader(model: settings.ModelSettings) -> detectors.Detector:
        """The real detector; every run after the warm-up (one run at max batch 1) is held."""
        detector = detectors.load(model)
        real_run, calls = detector.run, itertools.count()

        def run(batch: np.ndarray) -> np.ndarray:
            if next(calls) >= 1:
                release.wait(timeout=30)
            return real_run(batch)

        detector.run = run  # type: ignore[method-assign]
        return detector

    config = settings.ServeSettings(
        model=settings.ModelSettings(path=tiny_classic),
        batching=settings.BatchingSettings(
            max_batch_size=1, max_queue_delay_s=0.0, max_queue_size=1
        ),
        log_level="warning",
    )
    image = images_util.solid(64, 64)
    with servers.threaded(config, loader=held_loader) as (url, _):

        def metric(name: str) -> str:
            lines = httpx.get(f"{url}/metrics").text.splitlines()
            return next(line.split()[-1] for line in lines if line.startswith(name + " "))

        async def scenario() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:

                def post() -> asyncio.Future[httpx.Response]:
                    return asyncio.ensure_future(
                        client.post(
                            "/v1/detect", content=image, headers={"content-type": "image/png"}
                        )
                    )

                async def until(name: str, value: str) -> None:
                    for _ in range(600):
                        if await asyncio.to_thread(metric, name) == value:
                            return
                        await asyncio.sleep(0.05)
                    raise AssertionError(f"{name} never reached {value}")

                running = post()  # taken by the batcher, held in the model
                await until("kopilot_serving_inflight_requests", "1.0")
                await until("kopilot_serving_queue_depth", "0.0")
                queued = post()  # waits in the queue (size 1)
                await until("kopilot_serving_queue_depth", "1.0")
                refused = await asyncio.gather(*(post() for _ in range(3)))
                release.set()
                return [await running, await queued, *refused]

        responses = asyncio.run(scenario())
        assert [r.status_code for r in responses] == [200, 200, 429, 429, 429]
        for r in responses[2:]:
            assert r.json()["error"]["code"] == "overloaded"
            assert int(r.headers["retry-after"]) >= 1
        assert (
            'kopilot_serving_request_failures_total{reason="overloaded"} 3.0'
            in httpx.get(f"{url}/metrics").text
        )
