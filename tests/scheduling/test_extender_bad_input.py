"""One bad node, pod or quantity costs the extender that node or that request, never the others
(issue #17): an unreadable node is a failed node with its reason, a huge quantity a 400, and the
next request is answered as if neither had come."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kopilot.kits import clocks, randomness
from kopilot.kube import quantities as kube_quantities
from kopilot.model import errors, gpus
from kopilot.scheduling import extender_server, extender_types, extending, quantities
from tests.scheduling.extender_fixtures import args, v1_node, v1_pod


def _ext(**kw: Any) -> extending.Extender:
    return extending.Extender(profile="kopilot", rng=randomness.rng(0, "test-bad-input"), **kw)


def _post(ext: extending.Extender, verb: str, body: dict[str, Any]) -> tuple[int, Any]:
    code, payload = extender_server.answer(ext, verb, json.dumps(body).encode())
    return code, json.loads(payload)


def _nvl(name: str, slices: dict[str, int]) -> dict[str, Any]:
    node = v1_node(name, gpus=0, extra={f"nvidia.com/mig-{p}": str(c) for p, c in slices.items()})
    labels = node["metadata"]["labels"]
    del labels["kopilot.io/gpu-model"]
    labels["nvidia.com/gpu.product"] = "NVIDIA-H100-NVL"
    return node


def _with_label(node: dict[str, Any], key: str, value: str) -> dict[str, Any]:
    node["metadata"]["labels"][key] = value
    return node


BAD_NODES = [
    pytest.param(
        _with_label(v1_node("bad", gpus=4), "nvidia.com/gpu.replicas", "4x"),
        "nvidia.com/gpu.replicas",
        id="replicas-label",
    ),
    pytest.param(v1_node("bad", gpus=2, extra={"cpu": "1e24"}), "allocatable.cpu", id="cpu-1e24"),
    pytest.param(
        v1_node("bad", gpus=2, extra={"memory": "1e999999999"}), "allocatable.memory", id="exp"
    ),
    pytest.param(
        _nvl("bad", {"5g.50gb": 1}), "nvidia.com/mig-5g.50gb", id="mig-profile-not-a-profile"
    ),
    pytest.param(v1_node("bad", gpus=100_000), "nvidia.com/gpu", id="gpu-count"),
]


@pytest.mark.parametrize(("bad", "named"), BAD_NODES)
def test_an_unreadable_node_is_failed_with_its_reason_and_the_others_are_judged(
    bad: dict[str, Any], named: str
) -> None:
    ext = _ext()
    pod = v1_pod("p", requests={"nvidia.com/gpu": "1"})
    code, result = _post(ext, "filter", args(pod, [bad, v1_node("good", gpus=2)]))
    assert code == 200, result
    assert [n["metadata"]["name"] for n in result["Nodes"]["items"]] == ["good"]
    reason = result["FailedNodes"]["bad"]
    assert "node bad" in reason and named in reason
    # names only (nodeCacheCapable): the same reason; prioritize scores it 0
    code, result = _post(ext, "filter", args(pod, names=["bad", "good"]))
    assert (code, result["NodeNames"], result["FailedNodes"]) == (200, ["good"], {"bad": reason})
    code, prios = _post(ext, "prioritize", args(pod, names=["bad", "good"]))
    assert code == 200 and {p["Host"]: p["Score"] for p in prios}["bad"] == 0


def test_a_node_fixed_later_is_judged_again() -> None:
    ext = _ext()
    pod = v1_pod("p", requests={"nvidia.com/gpu": "1"})
    broken = _with_label(v1_node("n", gpus=4), "nvidia.com/gpu.replicas", "0")
    _, result = _post(ext, "filter", args(pod, [broken]))
    assert "n" in result["FailedNodes"]
    fixed = _with_label(v1_node("n", gpus=4), "nvidia.com/gpu.replicas", "2")
    _, result = _post(ext, "filter", args(pod, [fixed]))
    assert result["FailedNodes"] == {} and ext.status()["broken_nodes"] == 0


def test_an_h100_nvl_with_its_own_mig_profiles_is_understood() -> None:
    # H100 NVL (94 GB): 1g.12gb x7, or 1g.24gb / 2g.24gb / 3g.47gb / 4g.47gb / 7g.94gb
    ext = _ext()
    node = _nvl("nvl", {"1g.12gb": 7, "3g.47gb": 2})
    pod = v1_pod("slice", requests={"nvidia.com/mig-3g.47gb": "1"})
    code, result = _post(ext, "filter", args(pod, [node]))
    assert code == 200 and result["FailedNodes"] == {}, result
    assert [n["metadata"]["name"] for n in result["Nodes"]["items"]] == ["nvl"]
    cl = ext._state
    assert cl is not None
    layouts = [g.mig for g in ext.nodes["nvl"].gpus if g.mig is not None]
    assert (
        sorted(s.profile for lay in layouts for s in lay.slices)
        == ["1g.12gb"] * 7 + ["3g.47gb"] * 2
    )
    assert len(layouts) == 2  # seven 1g slices fill one GPU; two 3g slices the other
    bind = {"PodName": "slice", "PodNamespace": "default", "PodUID": "uid-slice", "Node": "nvl"}
    assert _post(ext, "bind", bind) == (200, {"Error": ""})


@pytest.mark.parametrize(
    ("names", "slices"),
    [
        (["1g.12gb", "1g.24gb", "2g.24gb", "3g.47gb", "4g.47gb", "7g.94gb"], [1, 2, 2, 4, 4, 8]),
        (["1g.18gb", "1g.35gb", "2g.35gb", "3g.71gb", "4g.71gb", "7g.141gb"], [1, 2, 2, 4, 4, 8]),
        (["1g.24gb", "2g.24gb"], [2, 2]),  # a 1g as large as a 2g takes two slices
        (["1g.10gb"], [1]),
    ],
)
def test_mig_profiles_of_other_gpus_take_the_slices_of_the_same_names_on_an_h100(
    names: list[str], slices: list[int]
) -> None:
    model = gpus.model_for_profiles(names)
    assert [model.profile(n).memory_slices for n in names] == slices
    assert gpus.model_named(model.name) == model
    # the geometry is the H100's: a 7g fills the GPU, at most seven 1g slices
    one = names[0]
    assert gpus.pack_profiles(model, [one] * (8 // slices[0] - (slices[0] == 1))) is not None
    assert gpus.pack_profiles(model, [one] * (8 // slices[0] + 1)) is None


def test_a_huge_quantity_is_refused_and_later_requests_are_answered() -> None:
    ext = _ext()
    nodes = [v1_node("n1", gpus=2), v1_node("n2", gpus=2)]
    huge = v1_pod("huge", requests={"cpu": "1e24", "nvidia.com/gpu": "1"})
    code, result = _post(ext, "filter", args(huge, nodes))
    assert code == 400 and "resources.cpu" in result["Error"] and "default/huge" in result["Error"]
    for i in range(3):
        pod = v1_pod(f"ok{i}", requests={"cpu": "2", "nvidia.com/gpu": "1"})
        assert _post(ext, "filter", args(pod, nodes))[0] == 200
        code, prios = _post(ext, "prioritize", args(pod, nodes))
        assert code == 200 and len(prios) == 2


@pytest.mark.parametrize("text", ["1e24", "1e999999999", "2e18Ki", "1" * 200])
def test_quantities_past_the_limit_are_input_errors(text: str) -> None:
    with pytest.raises(errors.InvalidInputError):
        quantities.cpu_milli(text, field="cpu")
    with pytest.raises(errors.InvalidInputError):
        kube_quantities.cpu_milli(text, "cpu")


def _pod_with_inits(app: list[str], inits: list[tuple[str, str | None]]) -> dict[str, Any]:
    pod = v1_pod("init")
    pod["spec"]["containers"] = [
        {"name": f"app{i}", "resources": {"requests": {"nvidia.com/gpu": g}}}
        for i, g in enumerate(app)
    ]
    pod["spec"]["initContainers"] = [
        {"name": f"init{i}", "resources": {"limits": {"nvidia.com/gpu": g}}}
        | ({"restartPolicy": policy} if policy else {})
        for i, (g, policy) in enumerate(inits)
    ]
    return pod


@pytest.mark.parametrize(
    ("app", "inits", "effective"),
    [
        (["1"], [("4", None)], 4),  # the largest init container counts
        (["1", "2"], [("2", None)], 3),  # the app containers' sum counts
        (["1"], [("1", "Always"), ("3", None)], 4),  # a sidecar runs beside the init after it
        (["2"], [("1", "Always")], 3),  # ... and beside the app
    ],
)
def test_init_containers_count_as_kubernetes_counts_them(
    app: list[str], inits: list[tuple[str, str | None]], effective: int
) -> None:
    pod = extender_types.convert(_pod_with_inits(app, inits), extender_types.Pod)
    assert extending.demand_from(pod).gpus == effective


def test_a_pod_whose_init_container_needs_more_gpus_is_filtered_by_it() -> None:
    ext = _ext()
    pod = _pod_with_inits(["1"], [("4", None)])
    code, result = _post(ext, "filter", args(pod, [v1_node("two", gpus=2)]))
    assert code == 200 and "two" in result["FailedNodes"]


def test_nodes_learned_without_an_api_are_bounded_least_recent_first() -> None:
    ext = _ext(max_nodes=20)
    pod = v1_pod("p", requests={"nvidia.com/gpu": "1"})
    keep = v1_node("keep", gpus=1)
    for i in range(100):
        _post(ext, "filter", args(pod, [keep, v1_node(f"n{i}", gpus=1)]))
    assert len(ext.nodes) == 20 and len(ext._raw) == 20
    assert "keep" in ext.nodes and "n99" in ext.nodes and "n0" not in ext.nodes
    # a forgotten node is unknown to a names-only request, and learned again from objects
    _, result = _post(ext, "filter", args(pod, names=["n0"]))
    assert "n0" in result["FailedAndUnresolvableNodes"]
    _, result = _post(ext, "filter", args(pod, [v1_node("n0", gpus=1)]))
    assert [n["metadata"]["name"] for n in result["Nodes"]["items"]] == ["n0"]


def test_a_name_longer_than_kubernetes_allows_is_a_malformed_body() -> None:
    ext = _ext()
    code, result = _post(ext, "filter", args(v1_pod("p"), [v1_node("x" * 254)]))
    assert code == 400 and "253" in result["Error"]
    code, result = _post(ext, "filter", args(v1_pod("p"), names=["y" * 10_000]))
    assert code == 400


def test_sync_fails_only_the_unreadable_node_and_says_which_label() -> None:
    ext = _ext(clock=clocks.VirtualClock(0.0))
    bad = _with_label(v1_node("bad", gpus=4), "nvidia.com/gpu.replicas", "4x")
    nodes = [extender_types.convert(o, extender_types.Node) for o in (bad, v1_node("good"))]
    report = ext.sync(nodes, [])
    assert sorted(ext.nodes) == ["good"]
    assert any("node bad" in p and "nvidia.com/gpu.replicas" in p for p in report.problems)
    pod = v1_pod("p", requests={"nvidia.com/gpu": "1"})
    _, result = _post(ext, "filter", args(pod, names=["bad", "good"]))
    assert (
        result["NodeNames"] == ["good"]
        and "nvidia.com/gpu.replicas" in result["FailedNodes"]["bad"]
    )


def test_nodes_given_at_start_report_the_unreadable_ones() -> None:
    ext = _ext()
    bad = _with_label(v1_node("bad", gpus=4), "nvidia.com/gpu.replicas", "4x")
    items = [extender_types.convert(o, extender_types.Node) for o in (bad, v1_node("good"))]
    problems = ext.learn(items)
    assert sorted(ext.nodes) == ["good"]
    assert len(problems) == 1 and "node bad" in problems[0]
