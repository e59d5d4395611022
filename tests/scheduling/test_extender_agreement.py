"""The extender answers what the scheduling framework decides: on random clusters and random
sequences of filter, prioritize, bind and forget (and node changes), its HTTP answers (through
`extender_server.answer`, with all its caches) equal a fresh `placing.decide` on a fresh state
holding the same pods."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from kopilot.kits import randomness
from kopilot.scheduling import (
    extender_server,
    extender_types,
    extending,
    fgd,
    filters,
    placing,
    profiles,
    state,
)
from tests.scheduling.extender_fixtures import args, v1_node, v1_pod

MODELS = ("G2", "V100M16", "T4")


@st.composite
def v1_nodes(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for i in range(draw(st.integers(min_value=1, max_value=6))):
        kind = draw(st.sampled_from(["plain", "plain", "sliced", "mig"]))
        cpu = {"cpu": str(draw(st.sampled_from([8, 32, 96]))), "memory": "256Gi"}
        if kind == "mig":
            mig = {
                "nvidia.com/mig-1g.10gb": str(draw(st.integers(min_value=0, max_value=3))),
                "nvidia.com/mig-3g.40gb": str(draw(st.integers(min_value=0, max_value=1))),
            }
            node = v1_node(f"n{i}", gpus=0, product="A100-80GB", extra={**cpu, **mig})
        else:
            gpus = draw(st.integers(min_value=0, max_value=3))
            replicas = draw(st.sampled_from([2, 4])) if kind == "sliced" and gpus else 1
            node = v1_node(
                f"n{i}", gpus=gpus * replicas, product=draw(st.sampled_from(MODELS)), extra=cpu
            )
            if replicas > 1:
                node["metadata"]["labels"]["nvidia.com/gpu.replicas"] = str(replicas)
        node["spec"]["unschedulable"] = draw(st.booleans()) and draw(st.booleans())
        out.append(node)
    return out


@st.composite
def v1_pods(draw: st.DrawFn, name: str) -> dict[str, Any]:
    requests: dict[str, Any] = {
        "cpu": str(draw(st.sampled_from([0, 1, 4, 16]))),
        "memory": f"{draw(st.sampled_from([0, 1, 8, 64]))}Gi",
    }
    kind = draw(st.sampled_from(["share", "share", "whole", "none", "mig"]))
    if kind == "share":
        requests["kopilot.io/gpu-milli"] = str(draw(st.integers(min_value=1, max_value=999)))
    elif kind == "whole":
        requests["nvidia.com/gpu"] = str(draw(st.integers(min_value=1, max_value=3)))
    elif kind == "mig":
        requests["nvidia.com/mig-1g.10gb"] = "1"
    pod = v1_pod(name, requests=requests)
    models = draw(st.lists(st.sampled_from(MODELS), max_size=2, unique=True))
    if models:
        pod["metadata"]["annotations"] = {"kopilot.io/gpu-models": "|".join(models)}
    return pod


def _reference(
    ext: extending.Extender, nodes: list[dict[str, Any]], pod: dict[str, Any]
) -> tuple[list[str], dict[str, float]]:
    """The framework's verdict: nodes passing the GPU filters and their weighted scores, on a
    fresh state with the pods the extender has bound and a fresh profile (no caches)."""
    parsed = [extender_types.convert(n, extender_types.Node) for n in nodes]
    fresh = state.ClusterState(extending.node_from(n) for n in parsed)
    for b in ext.bound.values():
        fresh.assign(state.occupy(fresh, b.demand, fresh.index[b.node], b.gpu_indices))
    scorer = ext._profile_for().scores[0][0]
    assert isinstance(scorer, fgd.FragmentationScore)
    base = profiles.named(ext.profile_name, workload=scorer.workload)
    profile = profiles.Profile(
        name=base.name,
        description=base.description,
        filters=(filters.GpuModel(), filters.GpuFit(), filters.MigFit()),
        scores=base.scores,
        picker=base.picker,
    )
    demand = extending.demand_from(extender_types.convert(pod, extender_types.Pod))
    decision = placing.decide(fresh, demand, profile, randomness.rng(0, "ref"), explain=True)
    assert decision.table is not None
    if not decision.placed:
        return [], {}
    total = decision.table.total
    assert total is not None
    passed = [n for i, n in enumerate(fresh.names) if not math.isnan(total[i])]
    return passed, {n: float(total[fresh.index[n]]) for n in passed}


def _check_priorities(
    got: list[dict[str, Any]], scores: dict[str, float], weight_sum: float
) -> None:
    top = max(scores.values(), default=0.0)
    for p in got:
        value = scores.get(p["Host"])
        if value is None:
            assert p["Score"] == 0
            continue
        scaled = value / (100.0 * weight_sum) * extender_types.MAX_EXTENDER_PRIORITY
        at_top = top > 0 and value >= top - 1e-9
        expected = 10 if at_top else int(np.clip(round(scaled), 0, 10))
        if p["Score"] != expected:  # only a float hair from a rounding edge may differ
            near_half = abs(scaled - math.floor(scaled) - 0.5) < 1e-6
            near_top = value != top and abs(value - top) < 1e-6
            assert near_half or near_top, (p, expected, value, top)


def _post(ext: extending.Extender, verb: str, body: dict[str, Any]) -> Any:
    code, raw = extender_server.answer(ext, verb, orjson.dumps(body))
    assert code == 200, raw
    return orjson.loads(raw)


def _ask(
    ext: extending.Extender,
    nodes: list[dict[str, Any]],
    pod: dict[str, Any],
    *,
    names_only: bool,
    all_nodes: bool,
) -> list[dict[str, Any]]:
    """Filter then prioritize one pod, as kube-scheduler does, and check both answers against
    the framework; return the priorities. Prioritize is asked about the nodes that passed
    filter, or (`all_nodes`) about all of them (the failed ones must get 0)."""
    names = [n["metadata"]["name"] for n in nodes]
    # with names only, kube-scheduler may name a node the extender never saw
    asked_names = [*names, "ghost"] if names_only else names
    result = _post(ext, "filter", args(pod, names=asked_names) if names_only else args(pod, nodes))
    expected, scores = _reference(ext, nodes, pod)
    got = (
        result["NodeNames"]
        if names_only
        else [n["metadata"]["name"] for n in result["Nodes"]["items"]]
    )
    assert got == expected
    assert set(result["FailedNodes"]) | set(result["FailedAndUnresolvableNodes"]) == (
        set(asked_names) - set(expected)
    )
    if names_only:
        assert result["FailedAndUnresolvableNodes"]["ghost"] == extending.UNKNOWN_NODE
    asked = asked_names if all_nodes else expected
    chosen = [n for n in nodes if n["metadata"]["name"] in asked]
    prios: list[dict[str, Any]] = _post(
        ext, "prioritize", args(pod, names=asked) if names_only else args(pod, chosen)
    )
    assert [p["Host"] for p in prios] == asked
    weight_sum = sum(w for _, w in ext._profile_for().scores) or 1.0
    _check_priorities(prios, scores, weight_sum)
    return prios


@settings(max_examples=60, deadline=None)
@given(
    nodes=v1_nodes(),
    steps=st.lists(st.data(), min_size=1, max_size=10),
    names_only=st.booleans(),
    learn=st.booleans(),
    profile=st.sampled_from(["kopilot", "fgd"]),
)
def test_answers_equal_the_frameworks_decisions(
    nodes: list[dict[str, Any]],
    steps: list[st.DataObject],
    names_only: bool,
    learn: bool,
    profile: str,
) -> None:
    workload = None
    if not learn:
        shapes = steps[0].draw(st.lists(v1_pods("shape"), min_size=1, max_size=4))
        workload = profiles.workload_of(
            extending.demand_from(extender_types.convert(p, extender_types.Pod)) for p in shapes
        )
    ext = extending.Extender(profile=profile, workload=workload, rng=randomness.rng(1, "agree"))
    _post(ext, "filter", args(v1_pod("warm"), nodes))  # learns the nodes
    asked: list[dict[str, Any]] = []
    bound: list[dict[str, str]] = []
    for step, data in enumerate(steps):
        action = data.draw(st.sampled_from(["new", "new", "again", "forget", "grow"]))
        if action == "forget" and bound:
            assert _post(ext, "forget", bound.pop(0)) == {"Error": ""}
        elif action == "grow" and not names_only:  # a node gains a GPU: the state is rebuilt
            node = nodes[data.draw(st.integers(min_value=0, max_value=len(nodes) - 1))]
            alloc = node["status"]["allocatable"]
            if "nvidia.com/gpu" in alloc and "nvidia.com/gpu.replicas" not in node["metadata"]:
                alloc["nvidia.com/gpu"] = str(int(alloc["nvidia.com/gpu"]) + 1)
        pod = (
            data.draw(st.sampled_from(asked))
            if action == "again" and asked  # asked again (e.g. it was not bound)
            else data.draw(v1_pods(f"p{step}"))
        )
        asked.append(pod)
        prios = _ask(ext, nodes, pod, names_only=names_only, all_nodes=data.draw(st.booleans()))
        if prios and data.draw(st.booleans()):
            binding = {
                "PodName": pod["metadata"]["name"],
                "PodNamespace": "default",
                "PodUID": pod["metadata"]["uid"],
                "Node": max(prios, key=lambda p: p["Score"])["Host"],
            }
            # kube-scheduler checks CPU and memory itself before it binds; here the extender
            # refuses (400) a pod its node's CPU or memory cannot hold
            code, raw = extender_server.answer(ext, "bind", orjson.dumps(binding))
            assert code == 200 or b"over capacity" in raw, raw
            if code == 200 and orjson.loads(raw) == {"Error": ""}:
                bound.append(binding)
