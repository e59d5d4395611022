"""Extender.sync: the extender's nodes and pods follow the API server's lists (level-triggered)."""

from __future__ import annotations

from typing import Any, TypeVar

import pytest

from kopilot.kits import clocks, randomness
from kopilot.model import cluster
from kopilot.scheduling import extender_types, extending
from tests.scheduling.extender_fixtures import args, v1_node, v1_pod

T = TypeVar("T")


def _as(kind: type[T], obj: object) -> T:
    return extender_types.convert(obj, kind)


def _ext(clock: clocks.VirtualClock, grace_s: float = 60.0) -> extending.Extender:
    return extending.Extender(
        profile="kopilot", rng=randomness.rng(0, "test-sync"), clock=clock, grace_s=grace_s
    )


def _nodes(*objs: dict[str, Any]) -> list[extender_types.Node]:
    return [_as(extender_types.Node, o) for o in objs]


def _placed(
    name: str,
    node: str,
    requests: dict[str, Any],
    *,
    gpus: str | None = None,
    phase: str = "Running",
) -> extender_types.Pod:
    obj = v1_pod(name, requests=requests)
    obj["spec"]["nodeName"] = node
    obj["status"] = {"phase": phase}
    if gpus is not None:
        obj["metadata"]["annotations"] = {cluster.ANNOTATION_GPU_INDICES: gpus}
    return _as(extender_types.Pod, obj)


def _free_milli(ext: extending.Extender, node: str) -> list[int]:
    cl = ext._state
    assert cl is not None
    return [int(x) for x in cl.gpu_free[cl.index[node]][:8]]


def test_a_restarted_extender_adopts_running_pods_on_their_annotated_gpus() -> None:
    ext = _ext(clocks.VirtualClock(100.0))
    report = ext.sync(
        _nodes(v1_node("n1", gpus=4), v1_node("n2", gpus=4)),
        [
            _placed("whole", "n1", {"nvidia.com/gpu": "2"}, gpus="1,3"),
            _placed("share", "n2", {"kopilot.io/gpu-milli": "300"}, gpus="2"),
            _placed("pending", "", {"nvidia.com/gpu": "1"}),
        ],
    )
    assert report.adopted == ("default/share", "default/whole")
    assert report.nodes_added == ("n1", "n2")
    assert _free_milli(ext, "n1")[:4] == [1000, 0, 1000, 0]
    assert _free_milli(ext, "n2")[:4] == [1000, 1000, 700, 1000]
    # The next filter sees those GPUs as taken: 3 whole GPUs are left on n2 only.
    result = ext.filter(
        _as(
            extender_types.ExtenderArgs,
            args(v1_pod("big", requests={"nvidia.com/gpu": "3"}), names=["n1", "n2"]),
        )
    )
    assert result["NodeNames"] == ["n2"]


def test_pods_that_ended_or_vanished_are_released_and_removed_nodes_dropped() -> None:
    clock = clocks.VirtualClock(0.0)
    ext = _ext(clock, grace_s=30.0)
    nodes = _nodes(v1_node("n1", gpus=2), v1_node("n2", gpus=2))
    ext.sync(
        nodes,
        [
            _placed("a", "n1", {"nvidia.com/gpu": "1"}, gpus="0"),
            _placed("b", "n1", {"nvidia.com/gpu": "1"}, gpus="1"),
            _placed("c", "n2", {"nvidia.com/gpu": "1"}, gpus="0"),
        ],
    )
    clock.advance_to(100.0)
    report = ext.sync(
        nodes[:1], [_placed("a", "n1", {"nvidia.com/gpu": "1"}, gpus="0", phase="Succeeded")]
    )
    assert report.released == ("default/a", "default/b", "default/c")
    assert report.nodes_removed == ("n2",)
    assert set(ext.nodes) == {"n1"}
    assert _free_milli(ext, "n1")[:2] == [1000, 1000]


def test_a_pod_just_bound_survives_a_sync_that_does_not_show_it_yet() -> None:
    clock = clocks.VirtualClock(0.0)
    ext = _ext(clock, grace_s=30.0)
    nodes = _nodes(v1_node("n1", gpus=2))
    ext.sync(nodes, [])
    pod = v1_pod("p", requests={"nvidia.com/gpu": "1"})
    ext.filter(_as(extender_types.ExtenderArgs, args(pod, names=["n1"])))
    bound = ext.bind(
        _as(
            extender_types.ExtenderBindingArgs,
            {"PodName": "p", "PodNamespace": "default", "PodUID": "uid-p", "Node": "n1"},
        )
    )
    assert bound == {"Error": ""}
    clock.advance_to(10.0)  # the watch has not delivered spec.nodeName yet
    assert ext.sync(nodes, [_as(extender_types.Pod, pod)]).released == ()
    assert "default/p" in ext.bound
    clock.advance_to(100.0)  # still nowhere after the grace period: the API is the truth
    assert ext.sync(nodes, []).released == ("default/p",)


def test_unreadable_objects_are_reported_and_the_rest_still_syncs() -> None:
    ext = _ext(clocks.VirtualClock(0.0))
    bad_node = v1_node("bad", extra={"nvidia.com/gpu": "lots"})
    report = ext.sync(
        _nodes(v1_node("n1", gpus=2), bad_node),
        [
            _placed("ok", "n1", {"nvidia.com/gpu": "1"}, gpus="0"),
            _placed("weird", "n1", {"kopilot.io/gpu-milli": "2500"}),
            _placed("garbled", "n1", {"nvidia.com/gpu": "1"}, gpus="x,y"),
        ],
    )
    assert set(ext.nodes) == {"n1"}
    assert report.adopted == ("default/garbled", "default/ok")
    assert any("bad" in p for p in report.problems)
    assert any("default/weird" in p and "1..999" in p for p in report.problems)
    # The garbled annotation is ignored: the pod gets the first free GPU instead.
    assert _free_milli(ext, "n1")[:2] == [0, 0]


def test_a_pod_that_overfills_its_node_is_reported_not_fatal() -> None:
    ext = _ext(clocks.VirtualClock(0.0))
    report = ext.sync(
        _nodes(v1_node("n1", gpus=1)),
        [
            _placed("first", "n1", {"nvidia.com/gpu": "1"}, gpus="0"),
            _placed("second", "n1", {"nvidia.com/gpu": "1"}, gpus="0"),
        ],
    )
    assert len([p for p in report.problems if "not accounted on n1" in p]) == 1
    assert _free_milli(ext, "n1")[:1] == [0]
    # Not retried (and rebuilt) every second while nothing changes; still reported.
    before = ext._state
    again = ext.sync(
        _nodes(v1_node("n1", gpus=1)),
        [
            _placed("first", "n1", {"nvidia.com/gpu": "1"}, gpus="0"),
            _placed("second", "n1", {"nvidia.com/gpu": "1"}, gpus="0"),
        ],
    )
    assert not again.changed and ext._state is before
    assert len([p for p in again.problems if "not accounted on n1" in p]) == 1
    assert ext.status() == {"nodes": 1, "pods": 1, "problems": 1, "broken_nodes": 0}


def test_pods_come_and_go_without_rebuilding_every_pod() -> None:
    clock = clocks.VirtualClock(0.0)
    ext = _ext(clock, grace_s=0.0)
    nodes = _nodes(v1_node("n1", gpus=2), v1_node("n2", gpus=2))
    a = _placed("a", "n1", {"nvidia.com/gpu": "1"}, gpus="1")
    ext.sync(nodes, [a])
    before = ext._state
    report = ext.sync(nodes, [_placed("b", "n2", {"nvidia.com/gpu": "2"})])
    assert report.released == ("default/a",) and report.adopted == ("default/b",)
    assert ext._state is before
    assert _free_milli(ext, "n1")[:2] == [1000, 1000]
    assert _free_milli(ext, "n2")[:2] == [0, 0]


def test_a_pod_on_a_node_the_extender_does_not_know_is_reported_not_adopted() -> None:
    ext = _ext(clocks.VirtualClock(0.0))
    report = ext.sync(
        _nodes(v1_node("n1", gpus=2)), [_placed("x", "gone", {"nvidia.com/gpu": "1"})]
    )
    assert report.adopted == () and "default/x" not in ext.bound
    assert any("gone" in p for p in report.problems)


def test_an_unchanged_sync_changes_nothing() -> None:
    ext = _ext(clocks.VirtualClock(0.0))
    nodes = _nodes(v1_node("n1", gpus=2))
    pods = [_placed("a", "n1", {"nvidia.com/gpu": "1"}, gpus="1")]
    assert ext.sync(nodes, pods).changed
    state_before = ext._state
    again = ext.sync(nodes, pods)
    assert not again.changed
    assert ext._state is state_before


def test_a_pod_object_seen_before_is_not_parsed_again(monkeypatch: pytest.MonkeyPatch) -> None:
    ext = _ext(clocks.VirtualClock(0.0))
    nodes = _nodes(v1_node("n1", gpus=2))
    pods = [_placed("a", "n1", {"nvidia.com/gpu": "1"}), _placed("b", "n1", {"cpu": "1"})]
    calls: list[str] = []
    real = extending.demand_from

    def counting(pod: extender_types.Pod) -> Any:
        calls.append(pod.metadata.name)
        return real(pod)

    monkeypatch.setattr(extending, "demand_from", counting)
    ext.sync(nodes, pods)
    ext.sync(nodes, pods)
    changed = _placed("a", "n1", {"nvidia.com/gpu": "2"})  # a new object: the pod changed
    ext.sync(nodes, [changed, pods[1]])
    assert calls == ["a", "b", "a"]


def test_a_pod_asked_again_after_a_sync_sees_what_the_sync_changed() -> None:
    ext = _ext(clocks.VirtualClock(0.0))
    nodes = _nodes(v1_node("n1", gpus=1), v1_node("n2", gpus=1))
    ext.sync(nodes, [])
    pod = v1_pod("p", requests={"nvidia.com/gpu": "1"})
    ask = _as(extender_types.ExtenderArgs, args(pod, names=["n1", "n2"]))
    assert ext.filter(ask)["NodeNames"] == ["n1", "n2"]
    ext.sync(nodes, [_placed("other", "n1", {"nvidia.com/gpu": "1"}, gpus="0")])
    assert ext.filter(ask)["NodeNames"] == ["n2"]  # kept verdicts from before would say n1 too
