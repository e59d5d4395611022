"""Real servers for tests, on 127.0.0.1: `kopilot serve` as a child process, or the same
`Server` on a thread of this process. Both are stopped by the test that starts them."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from kopilot.serving import api, detectors, server, settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(
    url: str, *, alive: Callable[[], bool], path: str = "/readyz", timeout: float = 90.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError("the server exited before it was ready")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}{path}", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout} s")


class ServeProcess:
    """`kopilot serve --model MODEL ARGS...` on a free loopback port."""

    def __init__(self, model: pathlib.Path, *args: str, log: pathlib.Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        command = [sys.executable, "-c", "from kopilot.cli import main; main()", "serve"]
        command += ["--model", str(model), "--host", "127.0.0.1", "--port", str(self.port), *args]
        self._log_file = log.open("wb")
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.process = subprocess.Popen(
            command, stdout=self._log_file, stderr=subprocess.STDOUT, env=env
        )

    def wait_ready(self) -> None:
        try:
            wait_ready(self.url, alive=lambda: self.process.poll() is None)
        except (RuntimeError, TimeoutError) as e:
            raise AssertionError(f"{e}; server log:\n{self.log.read_text()}") from e

    def terminate(self) -> int:
        """SIGTERM (what Kubernetes sends), then wait for the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            self._log_file.close()


def held_loader(release: threading.Event) -> api.Loader:
    """A loader of the real detector whose every run after the warm-up (one run at max batch 1)
    waits for `release` (30 s at most): the queue then fills deterministically."""

    def load(model: settings.ModelSettings) -> detectors.Detector:
        detector = detectors.load(model)
        real_run, calls = detector.run, itertools.count()

        def run(batch: np.ndarray) -> np.ndarray:
            if next(calls) >= 1:  # after the warm-up
                release.wait(timeout=30)
            return real_run(batch)

        detector.run = run  # type: ignore[method-assign]
        return detector

    return load


def one_slot(model: pathlib.Path) -> settings.ServeSettings:
    """Batches of 1, no queue delay, a queue of 1: one request runs, one waits, the rest get 429."""
    return settings.ServeSettings(
        model=settings.ModelSettings(path=model),
        batching=settings.BatchingSettings(
            max_batch_size=1, max_queue_delay_s=0.0, max_queue_size=1
        ),
        log_level="warning",
    )


def metric(url: str, name: str, **labels: str) -> float:
    """The value of `name`'s sample with `labels` on the server's /metrics (0 when absent)."""
    text = httpx.get(f"{url}/metrics", headers={"connection": "close"}).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def post_image(client: httpx.AsyncClient, image: bytes) -> asyncio.Future[httpx.Response]:
    """POST `image` to /v1/detect, started now; its answer later."""
    return asyncio.ensure_future(
        client.post("/v1/detect", content=image, headers={"content-type": "image/png"})
    )


async def fill_one_slot(
    client: httpx.AsyncClient, url: str, image: bytes
) -> list[asyncio.Future[httpx.Response]]:
    """On a `one_slot` server with a `held_loader`: one request taken by the batcher and held in
    the model, one waiting in the queue (each checked on /metrics); their answers later."""

    async def until(name: str, value: float) -> None:
        for _ in range(600):
            if await asyncio.to_thread(metric, url, name) == value:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{name} never reached {value}")

    running = post_image(client, image)
    await until("kopilot_serving_inflight_requests", 1)
    await until("kopilot_serving_queue_depth", 0)
    queued = post_image(client, image)
    await until("kopilot_serving_queue_depth", 1)
    return [running, queued]


@contextlib.contextmanager
def threaded(
    config: settings.ServeSettings,
    *,
    loader: api.Loader = detectors.load,
    ready: bool = True,
) -> Iterator[tuple[str, server.Server]]:
    """The real `Server` (uvicorn + app) on a thread, on a socket bound to a free port.

    With `ready`, waits for /readyz; otherwise only until the socket answers /healthz.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    instance = server.Server(config, sock=sock, loader=loader)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            instance.run()
        except BaseException as e:  # reported to the test below
            failure.append(e)

    thread = threading.Thread(target=run, name="test-server", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, alive=thread.is_alive, path="/readyz" if ready else "/healthz")
        yield url, instance
    finally:
        instance.stop()
        thread.join(timeout=30)
        sock.close()
    if failure:
        raise failure[0]
