"""Holding under abuse (issue #17): slow clients, floods, oversize and malformed input against the
real server (uvicorn + app + a tiny real ONNX detector) on a thread, on 127.0.0.1.

Each finding of the issue has a test that reproduces it: a 39,000,000 x 1 PNG, formats outside
the allow-list, half-sent headers and bodies, idle connections beyond the cap, unfinished uploads
beyond the body budget, a client that vanishes mid-upload, a burst beyond the queue. They assert
behaviour (what the server answers, what it counts), never durations: timeouts are configured
short, and every socket read has its own bound (`rawhttp.READ_TIMEOUT_S`).
"""

from __future__ import annotations

import asyncio
import pathlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from kopilot.serving import admission, connections, errors, preprocessing
from kopilot.serving import settings as serve_settings
from tests.serving import images_util, rawhttp, servers

pytestmark = pytest.mark.integration
PROBES = ("/healthz", "/readyz", "/metrics")


def eventually(url: str, name: str, *, at_least: float, **labels: str) -> float:
    """Poll a metric (bounded: 200 polls) until it reaches `at_least`; return its last value."""
    value = 0.0
    for _ in range(200):
        value = servers.metric(url, name, **labels)
        if value >= at_least:
            break
        time.sleep(0.05)
    return value


def probes_answer(url: str) -> list[int]:
    """Each probe on a fresh connection, as the kubelet sends it."""
    return [
        httpx.get(f"{url}{path}", headers={"connection": "close"}, timeout=5).status_code
        for path in PROBES
    ]


def config(
    model: pathlib.Path,
    *,
    limits: serve_settings.LimitSettings,
    connections: serve_settings.ConnectionSettings,
) -> serve_settings.ServeSettings:
    return serve_settings.ServeSettings(
        model=serve_settings.ModelSettings(path=model),
        limits=limits,
        connections=connections,
        log_level="warning",
    )


@pytest.fixture(scope="module")
def impatient(tiny_classic: pathlib.Path) -> Iterator[str]:
    """A server with short read timeouts (0.5 s)."""
    limits = serve_settings.LimitSettings(max_body_bytes=200_000)
    guard = serve_settings.ConnectionSettings(
        header_timeout_s=0.5, body_timeout_s=0.5, max_connections=64
    )
    with servers.threaded(config(tiny_classic, limits=limits, connections=guard)) as (url, _):
        yield url


@pytest.fixture(scope="module")
def patient(tiny_classic: pathlib.Path) -> Iterator[str]:
    """A server with long read timeouts, 8 connections at most and a 300 kB body budget."""
    limits = serve_settings.LimitSettings(max_body_bytes=200_000, max_inflight_body_bytes=300_000)
    guard = serve_settings.ConnectionSettings(
        header_timeout_s=60, body_timeout_s=60, max_connections=8
    )
    with servers.threaded(config(tiny_classic, limits=limits, connections=guard)) as (url, _):
        yield url


# -- oversize and unwanted images ---------------------------------------------------------------


def test_a_39_million_by_1_png_is_refused_from_its_header(impatient: str) -> None:
    # 38 KB with its pixel data cut short: had the server decoded it, it would say "truncated".
    data = images_util.png_wide(39_000_000, complete=False)
    response = httpx.post(
        f"{impatient}/v1/detect", content=data, headers={"content-type": "image/png"}
    )
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "image_too_large"
    assert "39000000x1" in error["message"] and "side" in error["message"]


def test_what_a_decode_would_allocate_is_checked_before_decoding() -> None:
    data = images_util.png_wide(2_000, 1_000, complete=False)  # 2 MP greyscale: 10 MB decoded
    with pytest.raises(errors.BadRequestError) as caught:
        preprocessing.decode(data, max_pixels=10**8, max_decode_bytes=8 * 2**20)
    assert (caught.value.code, caught.value.status) == ("image_too_large", 413)
    assert "MiB" in str(caught.value)
    whole = images_util.png_wide(2_000, 1_000)
    assert preprocessing.decode(whole, max_pixels=10**8, max_decode_bytes=16 * 2**20).width == 2000


REFUSED_FORMATS = ["GIF", "TIFF", "EPS", "ICO", "PPM"]


@pytest.mark.parametrize("fmt", REFUSED_FORMATS)
def test_formats_outside_the_allow_list_get_415_naming_them(impatient: str, fmt: str) -> None:
    data = images_util.encode(Image.new("RGB", (32, 32), (10, 200, 10)), fmt)
    response = httpx.post(
        f"{impatient}/v1/detect", content=data, headers={"content-type": "image/octet-stream"}
    )
    assert response.status_code == 415, response.text
    error = response.json()["error"]
    assert error["code"] == "unsupported_format"
    assert error["message"].startswith(fmt)


# -- slow clients -------------------------------------------------------------------------------


def test_half_sent_headers_get_408_and_the_connection_closes(impatient: str) -> None:
    sock = rawhttp.connect(impatient)
    try:
        sock.sendall(b"POST /v1/detect HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-")
        answer = rawhttp.read_answer(sock)
        assert answer.status == 408
        assert b"header_timeout" in answer.body
        assert rawhttp.closed_by_server(sock)
    finally:
        sock.close()


def test_headers_trickled_a_byte_at_a_time_still_time_out(impatient: str) -> None:
    """The header timeout is a deadline, not an idle timer: activity does not extend it."""
    sock = rawhttp.connect(impatient)
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: ")
        closed = False
        for _ in range(100):  # 10 s at most; the deadline is 0.5 s
            try:
                sock.sendall(b"a")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.1)
        assert closed, "a byte every 0.1 s kept the connection open for 10 s"
    finally:
        sock.close()


def test_a_body_that_stops_gets_408_and_is_counted_as_such(impatient: str) -> None:
    before = servers.metric(impatient, "kopilot_serving_requests_total", code="408")
    sock = rawhttp.connect(impatient)
    try:
        head = {"content-type": "image/png", "content-length": "10000"}
        sock.sendall(rawhttp.head("POST", "/v1/detect", head) + b"\x89PNG" * 25)
        answer = rawhttp.read_answer(sock)
        assert answer.status == 408
        assert b"body_timeout" in answer.body
    finally:
        sock.close()
    assert eventually(impatient, "kopilot_serving_requests_total", code="408", at_least=before + 1)
    assert (
        servers.metric(impatient, "kopilot_serving_request_failures_total", reason="body_timeout")
        >= 1
    )


def test_a_client_gone_mid_upload_is_a_499_not_a_500(
    tiny_classic: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    process = servers.ServeProcess(tiny_classic, "--log-level", "info", log=tmp_path / "log")
    try:
        process.wait_ready()
        sock = rawhttp.connect(process.url)
        head = {"content-type": "image/png", "content-length": "100000"}
        sock.sendall(rawhttp.head("POST", "/v1/detect", head) + b"\x00" * 1000)
        sock.close()
        url = process.url
        assert eventually(url, "kopilot_serving_requests_total", code="499", at_least=1) == 1
        assert servers.metric(url, "kopilot_serving_requests_total", code="500") == 0
    finally:
        assert process.terminate() == 0
    log = (tmp_path / "log").read_text()
    assert "Traceback" not in log and "ClientDisconnect" not in log
    assert [line for line in log.splitlines() if '"status": 499' in line], log


# -- floods -------------------------------------------------------------------------------------


def test_probes_answer_with_idle_and_half_open_connections_beyond_the_cap(patient: str) -> None:
    evicted = servers.metric(patient, "kopilot_serving_connection_events_total", event="evicted")
    socks: list[socket.socket] = []
    try:
        for i in range(30):  # 8 allowed
            sock = rawhttp.connect(patient)
            if i % 3 == 0:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n")  # never finished
            socks.append(sock)
        assert probes_answer(patient) == [200, 200, 200]
        good = httpx.post(
            f"{patient}/v1/detect",
            content=images_util.solid(40, 30),
            headers={"content-type": "image/png", "connection": "close"},
        )
        assert good.status_code == 200, good.text
    finally:
        rawhttp.close_all(socks)
    events = servers.metric(patient, "kopilot_serving_connection_events_total", event="evicted")
    assert events - evicted >= 30 - 8


def test_unfinished_uploads_beyond_the_body_budget_get_429_at_once(patient: str) -> None:
    held = rawhttp.connect(patient)  # reserves 190 kB of the 300 kB budget, sends 1 kB
    refused = rawhttp.connect(patient)
    try:
        head = {"content-type": "image/png", "content-length": "190000"}
        held.sendall(rawhttp.head("POST", "/v1/detect", head) + b"\x00" * 1000)
        assert eventually(patient, "kopilot_serving_inflight_requests", at_least=1) >= 1
        refused.sendall(rawhttp.head("POST", "/v1/detect", head))  # no body: answered anyway
        answer = rawhttp.read_answer(refused)
        assert answer.status == 429, answer
        assert b"uploads" in answer.body and answer.headers.get("retry-after")
        small = httpx.post(
            f"{patient}/v1/detect",
            content=images_util.solid(40, 30),
            headers={"content-type": "image/png", "connection": "close"},
        )
        assert small.status_code == 200, small.text  # a well-behaved client still fits
    finally:
        rawhttp.close_all([held, refused])
    # Once the held upload's client is gone its bytes are returned to the budget.
    for _ in range(200):
        again = httpx.post(
            f"{patient}/v1/detect",
            content=b"\x00" * 190_000,
            headers={"content-type": "image/png", "connection": "close"},
        )
        if again.status_code != 429:
            break
        time.sleep(0.05)
    assert again.status_code == 400 and again.json()["error"]["code"] == "not_an_image"


def test_a_burst_beyond_the_queue_gets_429_before_its_bodies_arrive(
    tiny_classic: pathlib.Path,
) -> None:
    """The model is held, one request runs and one waits (queue of 1): every further request is
    refused on arrival. They send headers only, so an answer proves nothing waited for a body,
    a decode or the queue; the probes answer meanwhile."""
    release = threading.Event()
    loader = servers.held_loader(release)
    image = images_util.solid(64, 64)
    socks: list[socket.socket] = []
    with servers.threaded(servers.one_slot(tiny_classic), loader=loader) as (url, _):

        async def admitted() -> list[int]:
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                post = await servers.fill_one_slot(client, url, image)
                try:
                    for _ in range(6):
                        sock = rawhttp.connect(url)
                        socks.append(sock)
                        head = {"content-type": "image/png", "content-length": "50000"}
                        sock.sendall(rawhttp.head("POST", "/v1/detect", head))
                    refused = [await asyncio.to_thread(rawhttp.read_answer, s) for s in socks]
                    probes = await asyncio.to_thread(probes_answer, url)
                finally:
                    release.set()
                    rawhttp.close_all(socks)
                done = [r.status_code for r in await asyncio.gather(*post)]
                return [*done, *(a.status or 0 for a in refused), *probes]

        statuses = asyncio.run(admitted())
    assert statuses == [200, 200] + [429] * 6 + [200, 200, 200]


# -- malformed requests (hypothesis) ------------------------------------------------------------

HEADER_NAMES = st.sampled_from(
    ["content-type", "content-length", "transfer-encoding", "expect", "connection", "x-junk"]
) | st.text(alphabet="abcxyz-", min_size=1, max_size=12)
HEADER_VALUES = st.sampled_from(
    ["image/png", "chunked", "100-continue", "close", "-1", "0", "99999999999999", "1e3"]
) | st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "OPTIONS"]),
    path=st.sampled_from(["/v1/detect", "/healthz", "/metrics"])
    | st.text(alphabet="ab/%?=&.", max_size=16).map(lambda p: "/" + p),
    headers=st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=5),
    body=st.binary(max_size=256),
)
def test_malformed_heads_and_framing_never_get_a_5xx(
    impatient: str, method: str, path: str, headers: list[tuple[str, str]], body: bytes
) -> None:
    lines = [f"{method} {path} HTTP/1.1", "host: 127.0.0.1", "connection: close"]
    lines += [f"{name}: {value}" for name, value in headers]
    sock = rawhttp.connect(impatient)
    try:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        answer = rawhttp.read_answer(sock)  # a bound on the wait: the 0.5 s read timeouts
    except (ConnectionResetError, BrokenPipeError):
        answer = None
    finally:
        sock.close()
    if answer is not None and answer.status is not None:
        assert answer.status < 500, answer
    assert probes_answer(impatient) == [200, 200, 200]


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(1, 5),
    budget=st.integers(1, 1000),
    steps=st.lists(
        st.tuples(st.sampled_from(["enter", "leave", "grow", "release"]), st.integers(0, 600)),
        max_size=40,
    ),
)
def test_admission_and_the_body_budget_never_exceed_their_limits(
    limit: int, budget: int, steps: list[tuple[str, int]]
) -> None:
    gate, bodies = admission.Admission(limit), admission.BodyBudget(budget)
    entered, claims = 0, [bodies.claim() for _ in range(3)]
    for op, n in steps:
        claim = claims[n % 3]
        if op == "enter":
            entered += gate.try_enter()
        elif op == "leave" and entered:
            gate.leave()
            entered -= 1
        elif op == "grow":
            held = claim.held
            if not claim.reserve(n):
                assert claim.held == held  # a refused reservation changes nothing
        else:
            claim.release()
        assert 0 <= gate.inside == entered <= limit
        assert 0 <= bodies.held == sum(c.held for c in claims) <= budget
    for claim in claims:
        claim.release()
    assert bodies.held == 0


def test_probes_are_answered_by_the_connection_without_entering_the_app() -> None:
    """The probe paths never reach the ASGI app (so nothing in it can hold them up); every other
    request does. Real uvicorn with the guarded protocol, and a counting ASGI app."""
    entered: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        entered.append(scope["path"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    fast = {
        "/healthz": lambda: connections.Answer(
            status=200, content_type="application/json", body=b'{"status":"alive"}'
        )
    }
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    protocol = connections.protocol(serve_settings.ConnectionSettings(), None, fast)
    instance = uvicorn.Server(
        uvicorn.Config(app, http=protocol, lifespan="off", log_level="warning")
    )
    thread = threading.Thread(target=instance.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        servers.wait_ready(url, alive=thread.is_alive, path="/healthz", timeout=30)
        probe = httpx.get(f"{url}/healthz?verbose=1")
        assert (probe.status_code, probe.json()) == (200, {"status": "alive"})
        assert probe.headers["connection"] == "close"
        assert httpx.get(f"{url}/other").status_code == 204
        assert httpx.head(f"{url}/healthz").status_code == 204  # only GET takes the fast path
    finally:
        instance.should_exit = True
        thread.join(timeout=30)
        sock.close()
    assert entered == ["/other", "/healthz"]


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--formats", "JPEG,NOPE"], "NOPE"),
        (["--max-body-mb", "30", "--max-inflight-body-mb", "10"], "--max-inflight-body-mb"),
    ],
)
def test_limits_that_cannot_work_stop_the_command_with_one_line(
    tiny_classic: pathlib.Path, args: list[str], names: str
) -> None:
    command = [sys.executable, "-c", "from kopilot.cli import main; main()", "serve"]
    command += ["--model", str(tiny_classic), "--host", "127.0.0.1", "--port", "0", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert names in done.stderr and "Traceback" not in done.stderr
