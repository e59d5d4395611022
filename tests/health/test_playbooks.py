"""Playbooks: each (where, what) maps to the right proposed actions, each with reason + evidence."""

from __future__ import annotations

import numpy as np
import pytest

from kopilot.health import playbooks
from kopilot.model import actions, cluster, series

P = playbooks


def make_series(values: list[float] | np.ndarray, step: float = 15.0) -> series.Series:
    v = np.asarray(values, dtype=float)
    return series.Series.of(np.arange(len(v)) * step, v)


def spike_series() -> series.Series:
    v = np.full(60, 100.0)
    v[40] = 900.0
    return make_series(v)


def snapshot(
    *, peers: int = 2, replicas: int = 3, max_replicas: int = 10
) -> cluster.ClusterSnapshot:
    pods = tuple(
        cluster.Pod(
            name=f"yolo-{i}",
            namespace="ml",
            node="node-a",
            service="ml/yolo",
            phase=cluster.PodPhase.RUNNING,
        )
        for i in range(peers + 1)
    )
    service = cluster.ModelService(
        name="yolo",
        namespace="ml",
        replicas=replicas,
        ready_replicas=replicas,
        capacity_rps=50,
        cold_start_s=60,
        max_replicas=max_replicas,
    )
    nodes = (
        cluster.Node(name="node-a", cpu_milli=8000, memory_mib=32000),
        cluster.Node(name="node-b", cpu_milli=8000, memory_mib=32000, unschedulable=True),
    )
    return cluster.ClusterSnapshot(time=900.0, nodes=nodes, pods=pods, services=(service,))


def anomaly(where: P.Where, what: P.What, subject: str, *, score: float = 0.9, s=None) -> P.Anomaly:
    return P.Anomaly(
        where=where,
        what=what,
        subject=subject,
        metric="m",
        score=score,
        at=600.0,
        series=s if s is not None else spike_series(),
    )


def kinds(result: list[actions.Action]) -> list[str]:
    return [a.kind for a in result]


@pytest.mark.parametrize(
    ("where", "what", "subject", "expected"),
    [
        (P.Where.POD, P.What.LATENCY, "ml/yolo-0", ["Recommend", "Alert"]),
        (P.Where.POD, P.What.ERRORS, "ml/yolo-0", ["Restart", "Alert"]),
        (P.Where.POD, P.What.LEAK, "ml/yolo-0", ["Restart", "Alert"]),
        (P.Where.SERVICE, P.What.LATENCY, "ml/yolo", ["Scale", "Alert"]),
        (P.Where.SERVICE, P.What.LATENCY, "ml/unmanaged", ["Alert"]),
        (P.Where.NODE, P.What.HARDWARE_ERROR, "node-a", ["Cordon", "Alert"]),
        (P.Where.NODE, P.What.THERMAL, "node-a", ["Cordon", "Alert"]),
        (P.Where.GPU, P.What.HARDWARE_ERROR, "node-a/3", ["Cordon", "Alert"]),
        (P.Where.GPU, P.What.THERMAL, "node-a/3", ["Cordon", "Alert"]),
        (P.Where.NODE, P.What.LATENCY, "node-a", ["Alert"]),
        (P.Where.POD, P.What.LATENCY, "ml/unknown", ["Alert"]),
        (P.Where.NODE, P.What.HARDWARE_ERROR, "node-b", ["Alert"]),  # already cordoned
    ],
)
def test_playbook_table(where, what, subject, expected) -> None:
    result = P.propose(anomaly(where, what, subject), snapshot())
    assert kinds(result) == expected
    for action in result:
        assert action.reason
        assert action.policy == P.POLICY
        assert action.evidence["metric"] == "m"
        assert "900" in str(action.evidence["series"])


def test_lone_replica_with_slow_latency_scales_out_instead_of_shifting_traffic() -> None:
    result = P.propose(anomaly(P.Where.POD, P.What.LATENCY, "ml/yolo-0"), snapshot(peers=0))
    assert kinds(result) == ["Scale", "Alert"]
    scale = result[0]
    assert isinstance(scale, actions.Scale)
    assert (scale.current, scale.replicas) == (3, 5)


def test_scale_out_stops_at_max_replicas() -> None:
    result = P.propose(
        anomaly(P.Where.SERVICE, P.What.LATENCY, "ml/yolo"), snapshot(replicas=10, max_replicas=10)
    )
    assert kinds(result) == ["Alert"]
    assert result[0].severity is actions.Severity.CRITICAL  # type: ignore[union-attr]


def test_hardware_error_drains_thermal_only_cordons() -> None:
    hw = P.propose(anomaly(P.Where.GPU, P.What.HARDWARE_ERROR, "node-a/3"), snapshot())[0]
    hot = P.propose(anomaly(P.Where.NODE, P.What.THERMAL, "node-a"), snapshot())[0]
    assert isinstance(hw, actions.Cordon) and hw.drain
    assert isinstance(hot, actions.Cordon) and not hot.drain


def test_mild_gpu_heat_only_alerts() -> None:
    result = P.propose(anomaly(P.Where.GPU, P.What.THERMAL, "node-a/0", score=0.6), snapshot())
    assert kinds(result) == ["Alert"]


def test_low_or_nan_scores_propose_nothing() -> None:
    assert P.propose(anomaly(P.Where.POD, P.What.ERRORS, "ml/yolo-0", score=0.2), snapshot()) == []
    assert (
        P.propose(anomaly(P.Where.POD, P.What.ERRORS, "ml/yolo-0", score=float("nan")), snapshot())
        == []
    )


def test_evidence_holds_the_series_around_the_anomaly() -> None:
    ev = P.evidence_for(anomaly(P.Where.POD, P.What.ERRORS, "ml/yolo-0"), P.PlaybookSettings())
    values = [float(x) for x in str(ev["series"]).split(",")]
    assert len(values) == 12 + 1 + 3
    assert values[12] == 900.0
    assert ev["value"] == 900.0
    assert ev["baseline_median"] == 100.0
    assert (ev["series_from"], ev["series_to"]) == (28 * 15.0, 43 * 15.0)


def test_leak_detection_and_growth_rate() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(240)
    leak = make_series(1000 + 2.0 * t + rng.normal(0, 3, 240))  # +2 per 15 s = 480/h
    flat = make_series(1000 + rng.normal(0, 3, 240))
    assert P.looks_like_leak(leak)
    assert not P.looks_like_leak(flat)
    assert P.growth_per_hour(leak) == pytest.approx(480, rel=0.02)
    result = P.propose(anomaly(P.Where.POD, P.What.LEAK, "ml/yolo-1", s=leak), snapshot())
    assert "leak" in result[0].reason
    assert result[0].evidence["growth_per_hour"] == pytest.approx(480, rel=0.02)


def test_actions_round_trip_through_records() -> None:
    for what in (P.What.LATENCY, P.What.ERRORS):
        for action in P.propose(anomaly(P.Where.POD, what, "ml/yolo-0"), snapshot()):
            assert actions.from_record(actions.to_record(action)) == action


def test_evidence_of_an_anomaly_read_just_after_the_newest_sample_shows_that_sample() -> None:
    s = series.Series.of([0.0, 60.0, 120.0], [1.0, 2.0, 9.0])
    found = P.Anomaly(
        where=P.Where.POD,
        what=P.What.OTHER,
        subject="ml/a",
        metric="m",
        score=0.9,
        at=120.0004,
        series=s,
    )
    evidence = P.evidence_for(found, P.PlaybookSettings())
    assert evidence["value"] == 9.0 and evidence["baseline_median"] == 1.5
