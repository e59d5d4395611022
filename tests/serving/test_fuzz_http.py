"""Fuzzing the HTTP API with hypothesis-generated requests: no 5xx, no crash.

The real server (uvicorn + app) runs on a thread with a tiny real ONNX detector, so valid images
go all the way through batching and inference. Bounded: 300 generated requests in all.
"""

from __future__ import annotations

import base64
import json
import pathlib
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from kopilot.serving import settings as serve_settings
from tests.serving import images_util, servers

pytestmark = pytest.mark.integration
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def client(tiny_classic: pathlib.Path) -> Iterator[httpx.Client]:
    config = serve_settings.ServeSettings(
        model=serve_settings.ModelSettings(path=tiny_classic),
        limits=serve_settings.LimitSettings(max_body_bytes=256 * 1024, max_image_pixels=1_000_000),
        log_level="warning",
    )
    with servers.threaded(config) as (url, _), httpx.Client(base_url=url, timeout=30) as http:
        yield http
        # After everything the fuzzer sent, the server still answers and still detects.
        assert http.get("/healthz").status_code == 200
        good = http.post(
            "/v1/detect", content=images_util.solid(50, 40), headers={"content-type": "image/png"}
        )
        assert good.status_code == 200, good.text


def check(response: httpx.Response) -> None:
    assert response.status_code < 500, f"{response.status_code}: {response.text[:500]}"
    is_json = response.headers.get("content-type", "").startswith("application/json")
    if response.status_code >= 400 and is_json and response.content:
        assert response.json()["error"]["message"]


def seed_images() -> list[bytes]:
    """Small valid images in several formats, for the mutators to start from."""
    image = Image.new("RGB", (24, 16), (200, 30, 60))
    out = [images_util.encode(image, fmt) for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")]
    out.append(images_util.encode(image.convert("P"), "PNG"))
    return out


SEEDS = seed_images()


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "header"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            data = data[:at]
        elif kind == "insert":
            data[at:at] = draw(st.binary(max_size=64))
        elif kind == "header" and len(data) > 24:
            data[16:24] = draw(st.binary(min_size=8, max_size=8))
    return bytes(data)


CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            "image/jpeg",
            "image/png",
            "image/*",
            "application/octet-stream",
            "application/json",
            "multipart/form-data",
            "multipart/form-data; boundary=xyz",
            "text/plain",
            "",
            "image/png; charset=utf-8",
        ]
    ),
    st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40
    ),  # legal in a header
)
QUERY = st.dictionaries(
    st.sampled_from(["conf", "iou", "max_det", "x", "conf "]),
    st.one_of(
        st.text(max_size=12),
        st.floats(allow_nan=True, allow_infinity=True).map(str),
        st.integers().map(str),
    ),
    max_size=3,
)


@FUZZ
@given(
    body=st.one_of(st.binary(max_size=4096), mutated_images()),
    content_type=CONTENT_TYPES,
    query=QUERY,
)
def test_raw_bodies(
    client: httpx.Client, body: bytes, content_type: str, query: dict[str, str]
) -> None:
    try:
        headers: dict[str, bytes] = {"content-type": content_type.encode("latin-1")}
    except UnicodeEncodeError:
        headers = {}
    check(client.post("/v1/detect", content=body, headers=headers, params=query))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@FUZZ
@given(
    image=st.one_of(
        mutated_images().map(lambda b: base64.b64encode(b).decode()),
        st.text(max_size=200),
        JSON_VALUES,
    ),
    extra=st.dictionaries(
        st.sampled_from(["conf", "iou", "max_det", "other"]), JSON_VALUES, max_size=3
    ),
    wrap=st.booleans(),
)
def test_json_bodies(
    client: httpx.Client, image: object, extra: dict[str, object], wrap: bool
) -> None:
    body: object = {"image": image, **extra}
    if wrap:
        body = [body]
    check(
        client.post(
            "/v1/detect",
            content=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
        )
    )


@FUZZ
@given(
    field=st.sampled_from(["image", "file", "", "image[]"]),
    filename=st.text(max_size=20),
    data=st.one_of(mutated_images(), st.binary(max_size=512)),
    as_text=st.booleans(),
)
def test_multipart_bodies(
    client: httpx.Client, field: str, filename: str, data: bytes, as_text: bool
) -> None:
    if as_text:
        response = client.post("/v1/detect", data={field or "x": data.decode("latin-1")})
    else:
        response = client.post(
            "/v1/detect", files={field or "x": (filename or "f", data, "image/png")}
        )
    check(response)


@FUZZ
@given(
    boundary=st.text(alphabet="abcdefXYZ-0123", min_size=0, max_size=20),
    body=st.binary(max_size=1024),
    prefix=st.sampled_from(
        [b"", b"--xyz\r\n", b'--xyz\r\nContent-Disposition: form-data; name="image"\r\n\r\n']
    ),
)
def test_malformed_multipart(
    client: httpx.Client, boundary: str, body: bytes, prefix: bytes
) -> None:
    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    check(client.post("/v1/detect", content=prefix + body, headers=headers))


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
    path=st.sampled_from(
        ["/v1/detect", "/v1/model", "/healthz", "/readyz", "/metrics", "/openapi.json"]
    )
    | st.text(alphabet="abc/%.?=&", max_size=20).map(lambda p: "/" + p),
    body=st.binary(max_size=64),
)
def test_every_endpoint_and_method(
    client: httpx.Client, method: str, path: str, body: bytes
) -> None:
    check(client.request(method, path, content=body if method not in ("GET", "HEAD") else None))
