"""Back-pressure over HTTP: when the batching queue is full the server answers 429 at once (with
Retry-After) instead of holding the request, and the requests it accepted still succeed.

The real server and model; only the model's run is held on an Event so the queue fills
deterministically (no timing assertions)."""

from __future__ import annotations

import asyncio
import pathlib
import threading

import httpx

from tests.serving import images_util, servers


def test_a_full_queue_answers_429_and_accepted_requests_complete(
    tiny_classic: pathlib.Path,
) -> None:
    release = threading.Event()
    loader = servers.held_loader(release)
    image = images_util.solid(64, 64)
    with servers.threaded(servers.one_slot(tiny_classic), loader=loader) as (url, _):

        async def scenario() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                running, queued = await servers.fill_one_slot(client, url, image)
                refused = await asyncio.gather(
                    *(servers.post_image(client, image) for _ in range(3))
                )
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
