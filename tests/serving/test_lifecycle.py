"""Readiness follows the model: 503 while it loads and warms up, 200 after, and a model that
cannot be served says why. The real app and server, on a thread, with a loader held by a test."""

from __future__ import annotations

import dataclasses
import pathlib
import threading
from collections.abc import Callable

import httpx
import numpy as np
import pytest

from kopilot.serving import api, detectors, errors, settings
from tests.serving import images_util, onnx_models, servers


def held_loader(gate: threading.Event) -> Callable[[settings.ModelSettings], detectors.Detector]:
    """The real loader, started only once `gate` is set."""

    def load(model: settings.ModelSettings) -> detectors.Detector:
        gate.wait(timeout=30)
        return detectors.load(model)

    return load


def poll(condition: Callable[[], bool]) -> bool:
    for _ in range(600):
        if condition():
            return True
        threading.Event().wait(0.05)
    return False


def test_ready_only_after_the_model_is_loaded_and_warmed_up(tiny_classic: pathlib.Path) -> None:
    gate = threading.Event()
    config = settings.ServeSettings(model=settings.ModelSettings(path=tiny_classic))
    with servers.threaded(config, loader=held_loader(gate), ready=False) as (url, _):
        assert httpx.get(f"{url}/healthz").status_code == 200
        loading = httpx.get(f"{url}/readyz")
        assert loading.status_code == 503 and loading.json()["error"]["code"] == "not_ready_loading"
        early = httpx.post(f"{url}/v1/detect", content=b"x", headers={"content-type": "image/png"})
        assert early.status_code == 503 and early.headers["retry-after"] == "1"
        gate.set()
        assert poll(lambda: httpx.get(f"{url}/readyz").status_code == 200)
        assert "kopilot_serving_ready 1.0" in httpx.get(f"{url}/metrics").text


def test_a_model_that_fails_to_load_says_why_and_stops_the_server(tmp_path: pathlib.Path) -> None:
    model = onnx_models.classifier(tmp_path / "classifier.onnx")
    gate = threading.Event()
    config = settings.ServeSettings(model=settings.ModelSettings(path=model))
    with (
        pytest.raises(errors.ModelError, match="a classifier or another kind of model"),
        servers.threaded(config, loader=held_loader(gate), ready=False) as (_url, instance),
    ):
        gate.set()
        assert poll(lambda: instance.service.phase is not api.Phase.LOADING)
        assert instance.service.phase in (api.Phase.FAILED, api.Phase.STOPPING)
        assert "classifier" in instance.service.failure


def test_the_end_to_end_layout_serves_over_http(tmp_path: pathlib.Path) -> None:
    rows = np.array([[4, 4, 20, 28, 0.9, 1], [0, 0, 8, 8, 0.6, 0]], np.float32)
    model = onnx_models.end_to_end_detector(
        tmp_path / "e2e.onnx", rows=rows, names={0: "cat", 1: "dog"}
    )
    config = settings.ServeSettings(model=settings.ModelSettings(path=model))
    with servers.threaded(config) as (url, _):
        white = images_util.solid(64, 64)  # into the 32x32 input at scale 0.5
        response = httpx.post(
            f"{url}/v1/detect", content=white, headers={"content-type": "image/png"}
        )
        assert response.status_code == 200, response.text
        found = response.json()["detections"]
        assert [(d["class_name"], round(d["score"], 3)) for d in found] == [
            ("dog", 0.9),
            ("cat", 0.6),
        ]
        assert found[0]["box"] == pytest.approx([8, 8, 40, 56])  # input pixels / 0.5
        black = images_util.solid(64, 64, (0, 0, 0))
        response = httpx.post(
            f"{url}/v1/detect", content=black, headers={"content-type": "image/png"}
        )
        assert response.json()["detections"] == []  # scores scale with brightness in this model


def test_a_model_that_fails_on_batches_is_refused_with_advice(tmp_path: pathlib.Path) -> None:
    model = onnx_models.classic_detector(tmp_path / "one.onnx", only_one_image=True)
    batched = settings.ServeSettings(model=settings.ModelSettings(path=model))
    gate = threading.Event()
    with (
        pytest.raises(errors.ModelError, match="serve it with --max-batch-size 1"),
        servers.threaded(batched, loader=held_loader(gate), ready=False) as (_url, instance),
    ):
        gate.set()
        assert poll(lambda: instance.service.phase is not api.Phase.LOADING)
    single = dataclasses.replace(batched, batching=settings.BatchingSettings(max_batch_size=1))
    with servers.threaded(single) as (url, _):
        response = httpx.post(
            f"{url}/v1/detect",
            content=images_util.solid(64, 64),
            headers={"content-type": "image/png"},
        )
        assert response.status_code == 200 and response.json()["batch_size"] == 1
