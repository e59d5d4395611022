"""The extender serves kube-scheduler's HTTP API on loopback, keeps per-GPU state from its binds,
and answers malformed bodies with 400 while it keeps serving."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kopilot.kits import randomness
from kopilot.scheduling import extender_server, extender_types, extending
from tests.scheduling.extender_fixtures import args, v1_node, v1_pod

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server() -> Iterator[extender_server.Server]:
    ext = extending.Extender(profile="kopilot", rng=randomness.rng(0, "test-extender"))
    srv = extender_server.Server(ext).start()
    yield srv
    srv.close()


def post(srv: extender_server.Server, verb: str, body: bytes | dict[str, Any]) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn.request("POST", f"/{verb}", body=raw, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, json.loads(data) if data else None


NODES = [v1_node("n1", gpus=2), v1_node("n2", gpus=1), v1_node("cpu", gpus=0)]


def test_filter_prioritize_bind_with_full_node_objects(server: extender_server.Server) -> None:
    pod = v1_pod("share", requests={"cpu": "2", "memory": "4Gi", "kopilot.io/gpu-milli": "600"})
    code, result = post(server, "filter", args(pod, NODES))
    assert code == 200
    assert set(result) == {
        "Nodes",
        "NodeNames",
        "FailedNodes",
        "FailedAndUnresolvableNodes",
        "Error",
    }
    assert [n["metadata"]["name"] for n in result["Nodes"]["items"]] == ["n1", "n2"]
    assert "cpu" in result["FailedAndUnresolvableNodes"]
    code, prios = post(server, "prioritize", args(pod, NODES))
    assert code == 200
    assert {p["Host"] for p in prios} == {"n1", "n2", "cpu"}
    assert all(0 <= p["Score"] <= 10 for p in prios)
    best = max(prios, key=lambda p: p["Score"])["Host"]
    code, bound = post(
        server,
        "bind",
        {"PodName": "share", "PodNamespace": "default", "PodUID": "uid-share", "Node": best},
    )
    assert (code, bound) == (200, {"Error": ""})
    code, again = post(
        server,
        "bind",
        {"PodName": "share", "PodNamespace": "default", "PodUID": "uid-share", "Node": best},
    )
    assert "already bound" in again["Error"]
    # A second 600m share cannot join the first on its GPU: the extender knows per-GPU state.
    two = v1_pod("two", requests={"nvidia.com/gpu": "2"})
    code, result = post(server, "filter", args(two, NODES))
    names = [n["metadata"]["name"] for n in result["Nodes"]["items"]]
    assert ("n1" in names) == (best != "n1")
    code, forgotten = post(
        server,
        "forget",
        {"PodName": "share", "PodNamespace": "default", "PodUID": "uid-share", "Node": best},
    )
    assert forgotten == {"Error": ""}


def test_node_cache_capable_requests_carry_names_only(server: extender_server.Server) -> None:
    post(server, "filter", args(v1_pod("warm"), NODES))  # the cache learns n1, n2, cpu
    pod = v1_pod("whole", requests={"nvidia.com/gpu": "1"})
    code, result = post(server, "filter", args(pod, names=["n1", "n2", "ghost"]))
    assert code == 200
    assert result["Nodes"] is None
    assert sorted(result["NodeNames"]) == ["n1", "n2"]
    assert "ghost" in result["FailedAndUnresolvableNodes"]
    code, prios = post(server, "prioritize", args(pod, names=["n1", "n2"]))
    assert code == 200 and len(prios) == 2


def test_bind_of_a_pod_never_filtered_is_an_error_not_a_crash(
    server: extender_server.Server,
) -> None:
    code, result = post(
        server, "bind", {"PodName": "x", "PodNamespace": "default", "PodUID": "never", "Node": "n1"}
    )
    assert code == 200 and "never filtered" in result["Error"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{not json", "malformed filter body"),
        (b'{"Nodes": null}', "Pod"),
        (
            json.dumps(args(v1_pod("q", requests={"cpu": "lots"}), NODES)).encode(),
            "not a Kubernetes quantity",
        ),
        (
            json.dumps(
                args(v1_pod("q", requests={"kopilot.io/gpu-milli": "1500"}), NODES)
            ).encode(),
            "1..999",
        ),
        (json.dumps(args(v1_pod("q"), [{"metadata": {}}])).encode(), "no metadata.name"),
    ],
)
def test_malformed_bodies_get_400_with_a_reason(
    server: extender_server.Server, body: bytes, words: str
) -> None:
    code, result = post(server, "filter", body)
    assert code == 400
    assert words in result["Error"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "Pod",
                    "Nodes",
                    "NodeNames",
                    "items",
                    "metadata",
                    "name",
                    "spec",
                    "containers",
                    "resources",
                    "requests",
                    "status",
                    "allocatable",
                    "nvidia.com/gpu",
                    "cpu",
                    "PodName",
                    "PodUID",
                    "Node",
                    "PodNamespace",
                ]
            )
            | st.text(max_size=6),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=80, deadline=None)
@given(
    verb=st.sampled_from(["filter", "prioritize", "bind"]),
    body=json_values | st.binary(max_size=64),
)
def test_fuzzed_bodies_never_crash_the_server(
    server: extender_server.Server, verb: str, body: object
) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    code, _ = post(server, verb, raw)
    assert code in (200, 400)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/healthz")
    assert conn.getresponse().status == 200
    conn.close()


def _args(pod: dict[str, Any], *rest: Any, **kw: Any) -> extender_types.ExtenderArgs:
    return extender_types.decode(
        json.dumps(args(pod, *rest, **kw)).encode(), extender_types.ExtenderArgs
    )


def test_a_node_learned_later_is_known_to_the_next_names_only_request() -> None:
    # The extender caches how a candidate-name list resolves; learning a node must clear it.
    ext = extending.Extender(profile="kopilot", rng=randomness.rng(0, "test-extender-learn"))
    ext.filter(_args(v1_pod("warm"), NODES[:1]))  # knows n1 only
    names = ["n1", "n2"]
    first = ext.filter(_args(v1_pod("a", requests={"nvidia.com/gpu": "1"}), names=names))
    assert first["NodeNames"] == ["n1"] and "n2" in first["FailedAndUnresolvableNodes"]
    ext.filter(_args(v1_pod("b"), NODES))  # learns n2 (and cpu)
    second = ext.filter(_args(v1_pod("c", requests={"nvidia.com/gpu": "1"}), names=names))
    assert second["NodeNames"] == ["n1", "n2"] and not second["FailedAndUnresolvableNodes"]


@settings(max_examples=30, deadline=None)
@given(milli=st.integers(min_value=1, max_value=999), gpus=st.integers(min_value=0, max_value=1))
def test_priorities_follow_the_scores_rule(milli: int, gpus: int) -> None:
    # 0..10: a node's score over the profile's weight sum, scaled to 10, rounded half to even;
    # the best passing node gets 10; a node that failed the filter gets 0.
    ext = extending.Extender(profile="kopilot", rng=randomness.rng(0, "test-extender-prio"))
    requests = {"nvidia.com/gpu": "1"} if gpus else {"kopilot.io/gpu-milli": str(milli)}
    pod_args = _args(v1_pod(f"p{milli}-{gpus}", requests=requests), NODES)
    ext.filter(pod_args)
    scores = ext.scores(pod_args)
    weight_sum = sum(w for _, w in ext._profile_for().scores) or 1.0
    top = max(scores.values(), default=0.0)
    expected = []
    for n in ("n1", "n2", "cpu"):
        if n not in scores:
            expected.append({"Host": n, "Score": 0})
            continue
        scaled = scores[n] / (100.0 * weight_sum) * 10
        if top > 0 and scores[n] >= top - 1e-9:
            scaled = 10
        expected.append({"Host": n, "Score": max(0, min(10, round(scaled)))})
    assert ext.prioritize(pod_args) == expected


def _bind(ext: extending.Extender, name: str, node: str) -> dict[str, str]:
    binding = {"PodName": name, "PodNamespace": "default", "PodUID": f"uid-{name}", "Node": node}
    result = ext.bind(extender_types.convert(binding, extender_types.ExtenderBindingArgs))
    assert result == {"Error": ""}
    return binding


@pytest.mark.parametrize("names_only", [False, True])
def test_a_pod_asked_again_sees_the_binds_and_forgets_in_between(names_only: bool) -> None:
    # kube-scheduler asks about a pod again when it could not place it; the extender keeps each
    # pod's filter verdicts for its prioritize call, and must not answer from a stale state.
    ext = extending.Extender(profile="kopilot", rng=randomness.rng(0, "test-extender-again"))
    nodes = [v1_node("n1", gpus=1), v1_node("n2", gpus=1)]
    ext.filter(_args(v1_pod("warm"), nodes))
    one = {"nvidia.com/gpu": "1"}
    waiting = v1_pod("waiting", requests=one)
    ask = (
        (lambda: _args(waiting, names=["n1", "n2"]))
        if names_only
        else (lambda: _args(waiting, nodes))
    )
    assert ext.filter(ask())["FailedNodes"] == {}
    assert {p["Host"]: p["Score"] for p in ext.prioritize(ask())} == {"n1": 10, "n2": 10}
    ext.filter(_args(v1_pod("first", requests=one), nodes))
    _bind(ext, "first", "n1")
    assert set(ext.filter(ask())["FailedNodes"]) == {"n1"}
    assert {p["Host"]: p["Score"] for p in ext.prioritize(ask())} == {"n1": 0, "n2": 10}
    assert ext.forget("default/first")
    assert ext.filter(ask())["FailedNodes"] == {}
    assert {p["Host"]: p["Score"] for p in ext.prioritize(ask())} == {"n1": 10, "n2": 10}


def test_the_json_priorities_are_the_priorities() -> None:
    ext = extending.Extender(profile="kopilot", rng=randomness.rng(0, "test-extender-json"))
    nodes = [v1_node(f"n{i}", gpus=i) for i in range(5)] + [v1_node('odd "name"\\')]
    pod = _args(v1_pod("p", requests={"kopilot.io/gpu-milli": "300"}), nodes)
    ext.filter(pod)
    ext.bind(
        extender_types.convert(
            {"PodName": "p", "PodNamespace": "default", "PodUID": "uid-p", "Node": "n3"},
            extender_types.ExtenderBindingArgs,
        )
    )
    other = _args(v1_pod("q", requests={"kopilot.io/gpu-milli": "500"}), [*nodes, v1_node("x")])
    ext.filter(other)
    assert json.loads(ext.prioritize_json(other)) == ext.prioritize(other)


def test_a_pod_asked_again_sees_a_node_that_changed() -> None:
    ext = extending.Extender(profile="kopilot", rng=randomness.rng(0, "test-extender-grow"))
    two = v1_pod("two", requests={"nvidia.com/gpu": "2"})
    assert set(ext.filter(_args(two, [v1_node("n1", gpus=1)]))["FailedNodes"]) == {"n1"}
    assert ext.filter(_args(two, [v1_node("n1", gpus=2)]))["NodeNames"] is None
    assert ext.filter(_args(two, [v1_node("n1", gpus=2)]))["FailedNodes"] == {}


def test_json_answers_are_the_answers_and_prioritize_reads_new_nodes_in_full() -> None:
    ext = extending.Extender(profile="kopilot", rng=randomness.rng(0, "test-extender-json2"))
    pod = v1_pod("p", requests={"nvidia.com/gpu": "1"})
    for body in (args(pod, NODES), args(pod, names=["n1", "n2", "cpu", "ghost"])):
        parsed = extender_types.decode(json.dumps(body).encode(), extender_types.ExtenderArgs)
        assert json.loads(ext.filter_json(parsed)) == ext.filter(parsed)
    # prioritize reads only node names when filter has just read the objects; a node it has
    # never seen must still be read in full and learned (here it is the only one with a GPU)
    fresh = [v1_node("new", gpus=1), v1_node("cpu", gpus=0)]
    code, raw = extender_server.answer(ext, "prioritize", json.dumps(args(pod, fresh)).encode())
    assert code == 200
    assert json.loads(raw) == [{"Host": "new", "Score": 10}, {"Host": "cpu", "Score": 0}]


def _raw_exchange(srv: extender_server.Server, data: bytes, *, half_close: bool = True) -> bytes:
    """Send raw bytes, then read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    ("request_bytes", "status", "words"),
    [
        # Not HTTP: uvicorn's parser answers 400 and closes that connection.
        (b"GARBAGE\r\n\r\n", b"400", b"Invalid HTTP request"),
        (b"POST /filter HTTP/1.1\r\nno colon here\r\n\r\n", b"400", b"Invalid HTTP request"),
        (b"POST /filter HTTP/1.1\r\nContent-Length: ten\r\n\r\n", b"400", b"Invalid HTTP"),
        (b"POST /filter HTTP/1.1\r\nContent-Length: -1\r\n\r\n", b"400", b"Invalid HTTP"),
        # HTTP, but not the extender's: its own JSON errors.
        (b"POST /filter HTTP/1.1\r\nContent-Length: 0\r\n\r\n", b"400", b"malformed filter"),
        (b"PUT /filter HTTP/1.1\r\nContent-Length: 0\r\n\r\n", b"405", b"unsupported method"),
        (b"GET /nope HTTP/1.1\r\n\r\n", b"404", b"no such path"),
    ],
)
def test_malformed_requests_get_an_error_status_and_the_server_keeps_serving(
    server: extender_server.Server, request_bytes: bytes, status: bytes, words: bytes
) -> None:
    answer = _raw_exchange(server, request_bytes)
    assert answer.startswith(b"HTTP/1.1 " + status) and words in answer
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/healthz")
    assert conn.getresponse().status == 200
    conn.close()


def test_a_chunked_body_is_read_like_any_other(server: extender_server.Server) -> None:
    body = json.dumps(args(v1_pod("chunked"), names=["n1"])).encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    head = b"POST /filter HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    answer = _raw_exchange(server, head + chunked)
    assert answer.startswith(b"HTTP/1.1 200") and b'"NodeNames"' in answer


def test_pipelined_requests_are_answered_in_order_until_connection_close(
    server: extender_server.Server,
) -> None:
    body = json.dumps(args(v1_pod("pipelined"), names=["n1"])).encode()
    one = b"POST /filter HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    last = b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n"
    after = b"GET /healthz HTTP/1.1\r\n\r\n"  # sent after close: never answered
    answer = _raw_exchange(server, one + one + last + after, half_close=False)
    assert answer.count(b"HTTP/1.1 200 OK") == 3
    assert answer.index(b'"NodeNames"') < answer.index(b'"status":"ok"')
