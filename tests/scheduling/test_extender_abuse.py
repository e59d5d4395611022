"""The extender under abuse (issue #17), on 127.0.0.1 with bounded loops: no ExtenderArgs body
that kube-scheduler's schema allows, however odd its values, gets a 500; slow clients, floods and
oversize bodies never stop it answering /healthz and the next pod."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kopilot.kits import randomness
from kopilot.scheduling import extender_server, extending
from tests.scheduling.extender_fixtures import args, v1_node, v1_pod

pytestmark = pytest.mark.integration

# ---- ExtenderArgs (k8s.io/kube-scheduler/extender/v1) with adversarial values ----------------

QUANTITIES = st.one_of(
    st.sampled_from(
        [
            *("0", "1", "2", "8", "500m", "4Gi", "1.5", "1e3", "100Ki", "0.001", "2E", "7Ei"),
            *("1e24", "1e999999999", "1e-999999999", "-1", "nan", "inf", "4x", "", " 2 "),
            "9" * 80,
        ]
    ),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
RESOURCES = st.sampled_from(
    [
        "cpu",
        "memory",
        "pods",
        "nvidia.com/gpu",
        "kopilot.io/gpu-milli",
        "nvidia.com/mig-1g.10gb",
        "nvidia.com/mig-3g.40gb",
        "nvidia.com/mig-1g.12gb",
        "nvidia.com/mig-3g.47gb",
        "nvidia.com/mig-7g.141gb",
        "nvidia.com/mig-5g.50gb",
        "nvidia.com/mig-",
        "nvidia.com/mig-1g.0gb",
    ]
)
RESOURCE_MAPS = st.dictionaries(RESOURCES, QUANTITIES, max_size=4)
NAMES = st.one_of(
    st.sampled_from(["n1", "n2", "a100", "nvl", ""]), st.text(max_size=20), st.just("x" * 300)
)
LABELS = st.dictionaries(
    st.sampled_from(
        [
            "nvidia.com/gpu.replicas",
            "nvidia.com/gpu.product",
            "kopilot.io/gpu-model",
            "nvidia.com/gpu.count",
        ]
    ),
    st.one_of(
        st.sampled_from(
            ["4", "0", "4x", "-1", "1001", "NVIDIA-H100-NVL", "NVIDIA-A100-SXM4-80GB", "A100-40GB"]
        ),
        st.text(max_size=10),
    ),
    max_size=3,
)


@st.composite
def v1_nodes(draw: st.DrawFn) -> dict[str, Any]:
    alloc = draw(RESOURCE_MAPS)
    return {
        "metadata": {"name": draw(NAMES), "labels": draw(LABELS)},
        "spec": {"unschedulable": draw(st.booleans())},
        "status": {"allocatable": alloc, "capacity": alloc},
    }


@st.composite
def containers(draw: st.DrawFn, init: bool = False) -> dict[str, Any]:
    c: dict[str, Any] = {
        "name": draw(st.text(max_size=5)),
        "resources": {"requests": draw(RESOURCE_MAPS), "limits": draw(RESOURCE_MAPS)},
    }
    if init and draw(st.booleans()):
        c["restartPolicy"] = draw(st.sampled_from(["Always", "Never", "OnFailure", ""]))
    return c


@st.composite
def v1_pods(draw: st.DrawFn) -> dict[str, Any]:
    annotations = draw(
        st.dictionaries(
            st.sampled_from(["kopilot.io/gpu-models", "kopilot.io/gpu-indices"]),
            st.one_of(st.sampled_from(["A100-80GB|H100-80GB", "0,1", "x", "9" * 2000]), st.text()),
            max_size=2,
        )
    )
    return {
        "metadata": {
            "name": draw(NAMES),
            "namespace": draw(st.sampled_from(["default", "team-a", ""])),
            "uid": draw(st.text(max_size=8)),
            "annotations": annotations,
        },
        "spec": {
            "containers": draw(st.lists(containers(), max_size=3)),
            "initContainers": draw(st.lists(containers(init=True), max_size=2)),
        },
    }


@st.composite
def extender_args(draw: st.DrawFn) -> dict[str, Any]:
    pod = draw(v1_pods())
    if draw(st.booleans()):
        return {"Pod": pod, "Nodes": {"items": draw(st.lists(v1_nodes(), max_size=4))}}
    return {"Pod": pod, "NodeNames": draw(st.lists(NAMES, max_size=6))}


@pytest.fixture(scope="module")
def extender() -> extending.Extender:
    # one extender for every example, as one long-lived process sees them
    return extending.Extender(profile="kopilot", rng=randomness.rng(0, "test-abuse"))


def _still_serves(ext: extending.Extender) -> None:
    nodes = [v1_node("ok1", gpus=2), v1_node("ok2", gpus=2)]
    pod = json.dumps(args(v1_pod("canary", requests={"nvidia.com/gpu": "1"}), nodes)).encode()
    code, body = extender_server.answer(ext, "filter", pod)
    assert code == 200 and b"ok1" in body
    assert extender_server.answer(ext, "prioritize", pod)[0] == 200


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=extender_args(), node=NAMES)
def test_no_extender_args_body_gets_a_500(
    extender: extending.Extender, body: dict[str, Any], node: str
) -> None:
    raw = json.dumps(body).encode()
    for verb in ("filter", "prioritize"):
        code, payload = extender_server.answer(extender, verb, raw)
        assert code in (200, 400), payload
    meta = body["Pod"]["metadata"]
    binding = {
        "PodName": meta["name"],
        "PodNamespace": meta["namespace"],
        "PodUID": meta["uid"],
        "Node": node,
    }
    for verb in ("bind", "forget"):
        code, payload = extender_server.answer(extender, verb, json.dumps(binding).encode())
        assert code in (200, 400), payload
    _still_serves(extender)


# ---- the server under slow clients, floods and oversize bodies --------------------------------


@pytest.fixture
def server() -> Iterator[extender_server.Server]:
    ext = extending.Extender(profile="kopilot", rng=randomness.rng(0, "test-abuse-http"))
    srv = extender_server.Server(ext).start()
    yield srv
    srv.close()


def _get(srv: extender_server.Server, path: str = "/healthz") -> int:
    # answered at all: the 1 s a probe allows is measured by bench/abuse_extender.py
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5.0)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def _post(srv: extender_server.Server, verb: str, body: bytes) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        conn.request("POST", f"/{verb}", body=body)
        return conn.getresponse().status
    finally:
        conn.close()


def test_slow_clients_do_not_hold_up_the_probe_or_the_next_pod(
    server: extender_server.Server,
) -> None:
    slow = []
    try:
        for i in range(100):  # headers begun, never finished; bodies promised, never sent
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            if i % 2:
                sock.sendall(b"POST /filter HTTP/1.1\r\nHost: x\r\n")
            else:
                sock.sendall(b"POST /filter HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n{")
            slow.append(sock)
        assert _get(server) == 200
        body = json.dumps(args(v1_pod("p"), [v1_node("n1")])).encode()
        assert _post(server, "filter", body) == 200
    finally:
        for sock in slow:
            sock.close()
    assert _get(server) == 200


def test_a_flood_is_answered_request_by_request(server: extender_server.Server) -> None:
    nodes = [v1_node(f"n{i}", gpus=4) for i in range(20)]
    codes: list[int] = []

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        for j in range(50):
            pod = v1_pod(f"flood-{k}-{j}", requests={"nvidia.com/gpu": "1"})
            raw = json.dumps(args(pod, nodes) if j % 3 else args(pod, names=["n1", "zz"]))
            conn.request("POST", "/filter" if j % 2 else "/prioritize", body=raw.encode())
            resp = conn.getresponse()
            resp.read()
            codes.append(resp.status)
        conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    probes = [_get(server) for _ in range(5)]
    for t in threads:
        t.join(timeout=60)
    assert probes == [200] * 5
    assert codes == [200] * 400


def test_oversize_bodies_get_413_and_the_server_keeps_serving() -> None:
    ext = extending.Extender(profile="kopilot", rng=randomness.rng(0, "test-abuse-big"))
    srv = extender_server.Server(ext)
    srv.server.config.app = extender_server.App(ext, max_body=1 << 20, max_bodies=3 << 20)
    srv.start()
    try:
        assert _post(srv, "filter", b"[" + b"0," * (1 << 20) + b"0]") == 413
        # several large bodies at once: past the budget some get 413, none a 5xx
        codes: list[int] = []
        big = json.dumps(args(v1_pod("p"), [v1_node(f"n{i}") for i in range(1500)])).encode()
        assert 500_000 < len(big) < 1 << 20
        threads = [
            threading.Thread(target=lambda: codes.append(_post(srv, "filter", big)))
            for _ in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert len(codes) == 8 and set(codes) <= {200, 413} and 200 in codes
        assert ext.status()["nodes"] == 1500
        assert _get(srv) == 200
    finally:
        srv.close()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64),  # a TLS ClientHello
        b"POST /filter HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /filter HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n{}",
        b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n",
        b"DELETE /bind HTTP/1.1\r\n\r\n",
    ],
    ids=["tls", "bad-chunk", "two-lengths", "long-path", "delete"],
)
def test_malformed_http_gets_a_4xx_or_a_closed_connection(
    server: extender_server.Server, request_bytes: bytes
) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(request_bytes)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer == b"" or answer.startswith((b"HTTP/1.1 4", b"HTTP/1.0 4")), answer[:80]
    assert _get(server) == 200
