"""The real server (`kopilot serve`, a child process on 127.0.0.1) with the real YOLOv8 export:
detections match the model run directly, bad input gets 4xx while serving goes on, metrics
count what happened, and SIGTERM lets in-flight requests finish."""

from __future__ import annotations

import asyncio
import base64
import pathlib
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.serving import images_util, onnx_models, reference, servers

pytestmark = pytest.mark.integration
CONF, IOU = 0.05, 0.45


@pytest.fixture(scope="module")
def served(
    yolo_model: pathlib.Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[servers.ServeProcess]:
    log = tmp_path_factory.mktemp("serve") / "server.log"
    # --exact-jpeg: full-size decode, as the reference below does, so detections match closely.
    args = [
        "--max-batch-size",
        "4",
        "--max-queue-delay-ms",
        "20",
        "--max-body-mb",
        "2",
        "--exact-jpeg",
    ]
    process = servers.ServeProcess(yolo_model, *args, "--max-megapixels", "40", log=log)
    try:
        process.wait_ready()
        yield process
    finally:
        assert process.terminate() == 0, log.read_text()


def metric(url: str, name: str, **labels: str) -> float:
    return sample(httpx.get(f"{url}/metrics").text, name, **labels)


def sample(text: str, name: str, **labels: str) -> float:
    """A sample's value in a Prometheus text exposition (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def requests_for(images: dict[str, bytes]) -> list[tuple[str, dict[str, object]]]:
    """Each sample image in each of the three encodings the API accepts."""
    out: list[tuple[str, dict[str, object]]] = []
    for name, data in images.items():
        params = {"conf": CONF, "iou": IOU}
        out.append(
            (name, {"content": data, "headers": {"content-type": "image/jpeg"}, "params": params})
        )
        out.append((name, {"files": {"image": (name, data, "image/jpeg")}, "params": params}))
        b64 = base64.b64encode(data).decode()
        out.append((name, {"json": {"image": b64, "conf": CONF, "iou": IOU}}))
    return out


def test_detections_match_the_model_run_directly(
    served: servers.ServeProcess, yolo_model: pathlib.Path, images: dict[str, bytes]
) -> None:
    expected = {
        name: reference.Reference(yolo_model, 320).detect(data, conf=CONF, iou_threshold=IOU)
        for name, data in images.items()
    }
    assert all(expected.values()), "the sample photos should give detections at this threshold"
    cases = requests_for(images) * 2  # 12 concurrent requests: several share batches

    async def send() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=served.url, timeout=60) as client:
            return await asyncio.gather(*(client.post("/v1/detect", **kw) for _, kw in cases))  # type: ignore[arg-type]

    responses = asyncio.run(send())
    for (name, _), response in zip(cases, responses, strict=True):
        assert response.status_code == 200, response.text
        body = response.json()
        want = expected[name]
        got = body["detections"]
        assert len(got) == len(want), name
        for cls, score, box in want:  # order-free: near-equal scores may swap places in a batch
            assert any(
                d["class_id"] == cls
                and d["score"] == pytest.approx(score, abs=2e-3)
                and d["box"] == pytest.approx(box, abs=1.0)
                for d in got
            ), f"{name}: no detection of class {cls} score {score:.3f} at {box}"
        assert all(d["class_name"] for d in got)
        assert set(body["timings_ms"]) >= {
            "preprocess",
            "queue",
            "inference",
            "postprocess",
            "total",
        }
        assert 1 <= body["batch_size"] <= 4
    face = [d for d in responses[0].json()["detections"] if d["class_name"] == "FACE_MALE"]
    assert face, "zidane.jpg shows men's faces"
    assert metric(served.url, "kopilot_serving_batch_size_count") >= 1
    assert metric(served.url, "kopilot_serving_requests_total", code="200") >= len(cases)


BAD = [
    (
        "not an image",
        {"content": b"hello, not an image", "headers": {"content-type": "image/jpeg"}},
        400,
        "not_an_image",
    ),
    (
        "a format outside the allow-list",
        {"content": b"GIF89a but not really", "headers": {"content-type": "image/gif"}},
        415,
        "unsupported_format",
    ),
    (
        "wrong content type",
        {"content": b"hello", "headers": {"content-type": "text/plain"}},
        415,
        "unsupported_media_type",
    ),
    (
        "50 megapixels",
        {
            "content": images_util.png_claiming(10_000, 5_000),
            "headers": {"content-type": "image/png"},
        },
        413,
        "image_too_large",
    ),
    (
        "body over 2 MiB",
        {"content": b"\xff" * (3 * 1024 * 1024), "headers": {"content-type": "image/jpeg"}},
        413,
        "body_too_large",
    ),
    ("bad base64", {"json": {"image": "%%%"}}, 400, "invalid_base64"),
    (
        "bad json",
        {"content": b"{", "headers": {"content-type": "application/json"}},
        400,
        "invalid_field",
    ),
    ("conf out of range", {"json": {"image": "AA==", "conf": 3}}, 400, "invalid_field"),
    ("no image field", {"files": {"picture": ("x.jpg", b"x", "image/jpeg")}}, 400, "missing_image"),
    (
        "unknown query",
        {"content": b"x", "headers": {"content-type": "image/jpeg"}, "params": {"foo": 1}},
        400,
        "invalid_field",
    ),
]


@pytest.mark.parametrize("bad", BAD, ids=[b[0] for b in BAD])
def test_bad_input_gets_a_clear_4xx_and_serving_goes_on(
    served: servers.ServeProcess,
    images: dict[str, bytes],
    bad: tuple[str, dict[str, object], int, str],
) -> None:
    case, request_kwargs, status, code = bad
    response = httpx.post(f"{served.url}/v1/detect", timeout=60, **request_kwargs)  # type: ignore[arg-type]
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"], case
    assert metric(served.url, "kopilot_serving_request_failures_total", reason=code) >= 1
    ok = httpx.post(
        f"{served.url}/v1/detect",
        content=images["bus.jpg"],
        headers={"content-type": "image/jpeg"},
        timeout=60,
    )
    assert ok.status_code == 200


def test_truncated_image(served: servers.ServeProcess, images: dict[str, bytes]) -> None:
    data = images["zidane.jpg"]
    response = httpx.post(
        f"{served.url}/v1/detect",
        content=data[: len(data) // 3],
        headers={"content-type": "image/jpeg"},
        timeout=60,
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "image_truncated"


def test_operations_endpoints(served: servers.ServeProcess) -> None:
    assert httpx.get(f"{served.url}/healthz").status_code == 200
    assert httpx.get(f"{served.url}/readyz").json() == {"status": "ready"}
    model = httpx.get(f"{served.url}/v1/model").json()
    assert model["layout"] == "classic" and model["classes"][12] == "FACE_MALE"
    assert model["batching"]["max_batch_size"] == 4
    assert httpx.get(f"{served.url}/openapi.json").json()["openapi"].startswith("3.")
    assert metric(served.url, "kopilot_serving_ready") == 1
    assert metric(served.url, "kopilot_serving_inflight_requests") == 0
    unknown = httpx.get(f"{served.url}/v2/nothing")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "http_404"


def test_sigterm_finishes_in_flight_requests(
    yolo_model: pathlib.Path, images: dict[str, bytes], tmp_path: pathlib.Path
) -> None:
    # A long queue delay keeps requests in flight long enough to send SIGTERM among them.
    process = servers.ServeProcess(
        yolo_model,
        "--max-batch-size",
        "4",
        "--max-queue-delay-ms",
        "1500",
        log=tmp_path / "server.log",
    )
    exit_code = None
    try:
        process.wait_ready()

        async def scenario() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=process.url, timeout=60) as client:
                sent = [
                    asyncio.ensure_future(
                        client.post(
                            "/v1/detect",
                            content=images["zidane.jpg"],
                            headers={"content-type": "image/jpeg"},
                        )
                    )
                    for _ in range(3)
                ]
                async with httpx.AsyncClient(base_url=process.url, timeout=5) as probe:
                    # SIGTERM once every request reached the app and at least one is unanswered.
                    deadline = asyncio.get_running_loop().time() + 30
                    while True:
                        text = (await probe.get("/metrics")).text
                        inflight = sample(text, "kopilot_serving_inflight_requests")
                        answered = sample(text, "kopilot_serving_requests_total", code="200")
                        if inflight >= 1 and inflight + answered >= 3:
                            break
                        if asyncio.get_running_loop().time() > deadline:
                            raise AssertionError("the requests never got in flight")
                        await asyncio.sleep(0.02)
                await asyncio.to_thread(process.process.send_signal, 15)
                return await asyncio.gather(*sent)

        responses = asyncio.run(scenario())
        assert [r.status_code for r in responses] == [200, 200, 200]
        assert all(r.json()["detections"] for r in responses)
        # Wait for the exit the one SIGTERM causes: a second SIGTERM could land while the
        # interpreter finalises (default handlers back in place) and kill it with -15.
        exit_code = process.process.wait(timeout=60)
    finally:
        process.terminate()
    assert exit_code == 0
    assert '"event": "stopped"' in (tmp_path / "server.log").read_text()


def test_a_model_that_is_not_a_detector_stops_the_server_with_a_clear_error(
    tmp_path: pathlib.Path,
) -> None:
    model = onnx_models.classifier(tmp_path / "classifier.onnx")
    process = servers.ServeProcess(model, log=tmp_path / "server.log")
    exit_code = process.process.wait(timeout=60)
    process.terminate()
    log = (tmp_path / "server.log").read_text()
    assert exit_code == 2, log
    assert "error: " in log and "a classifier or another kind of model" in log
