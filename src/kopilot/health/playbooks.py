"""Remediation playbooks: from an anomaly (where, what) to proposed actions, as pure functions.

| where   | what                         | proposed actions                                              |
|---------|------------------------------|---------------------------------------------------------------|
| pod     | latency                      | shift traffic away (other ready replicas) or scale out; alert |
| pod     | errors                       | restart the pod; alert                                        |
| pod     | leak-like growth             | restart the pod before it runs out; alert                     |
| service | latency / errors (regression)| scale out (within max replicas); alert                        |
| node    | errors / hardware error      | cordon (and drain for hardware errors); alert critical        |
| node    | thermal                      | cordon; alert                                                 |
| gpu     | hardware error (XID, ECC)    | cordon and drain the GPU's node; alert critical               |
| gpu     | thermal                      | alert; cordon the node when the anomaly is severe             |
| any     | anything else                | alert with the evidence                                       |

Every action carries a human-readable reason and evidence: the detector's score, the metric, and
the series around the anomaly (a few points before and after it, as text). "Shift traffic away"
has no action type of its own in kopilot.model: it is a `Recommend` of the pod's traffic weight
(1 -> 0) that the serving layer or a person carries out. Playbooks only propose; the governor
decides what runs.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

from kopilot.model import actions, cluster, series

POLICY = "health.playbooks"


class Where(enum.StrEnum):
    POD = "pod"
    SERVICE = "service"
    NODE = "node"
    GPU = "gpu"


class What(enum.StrEnum):
    LATENCY = "latency"
    ERRORS = "errors"
    LEAK = "leak"
    THERMAL = "thermal"
    HARDWARE_ERROR = "hardware-error"
    OTHER = "other"


@dataclass(frozen=True, slots=True, kw_only=True)
class Anomaly:
    """A detector's finding on one stream.

    `subject` names the object: `namespace/pod` for a pod, `namespace/service` for a service, the
    node's name for a node, and `node/index` for a GPU. `series` is the stream itself (at least
    the points around `at`); `score` is the detector's anomaly score in [0, 1].
    """

    where: Where
    what: What
    subject: str
    metric: str
    score: float
    at: float
    series: series.Series


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybookSettings:
    min_score: float = 0.5
    """Below this score a playbook proposes nothing."""
    severe_score: float = 0.8
    """At or above this score the disruptive remedy of a warning-level anomaly is proposed too."""
    scale_out_factor: float = 1.5
    evidence_before: int = 12
    evidence_after: int = 3


def propose(
    anomaly: Anomaly,
    snapshot: cluster.ClusterSnapshot,
    settings: PlaybookSettings | None = None,
) -> list[actions.Action]:
    """The actions a playbook proposes for `anomaly` given the cluster as it is now."""
    s = settings or PlaybookSettings()
    if not math.isfinite(anomaly.score) or anomaly.score < s.min_score:
        return []
    evidence = evidence_for(anomaly, s)
    match anomaly.where, anomaly.what:
        case Where.POD, What.LATENCY:
            return _pod_latency(anomaly, snapshot, evidence, s)
        case Where.POD, What.ERRORS | What.LEAK:
            return _restart_pod(anomaly, snapshot, evidence)
        case Where.SERVICE, What.LATENCY | What.ERRORS:
            # A service-wide regression (a rollout's new version, say): more replicas, and a
            # person told (the service stream outlives the pods a rollout replaces).
            scaled = _scale_out_service(anomaly.subject, anomaly, snapshot, evidence, s)
            if any(isinstance(a, actions.Alert) for a in scaled):
                return scaled
            summary = f"service {anomaly.what} regression"
            return [*scaled, _alert(anomaly, evidence, actions.Severity.WARNING, summary)]
        case Where.NODE, What.ERRORS | What.HARDWARE_ERROR | What.THERMAL:
            drain = anomaly.what is What.HARDWARE_ERROR
            return _cordon(anomaly.subject, anomaly, snapshot, evidence, drain=drain)
        case Where.GPU, What.HARDWARE_ERROR:
            node = anomaly.subject.split("/", 1)[0]
            return _cordon(node, anomaly, snapshot, evidence, drain=True)
        case Where.GPU, What.THERMAL:
            node = anomaly.subject.split("/", 1)[0]
            if anomaly.score >= s.severe_score:
                return _cordon(node, anomaly, snapshot, evidence, drain=False)
            return [_alert(anomaly, evidence, actions.Severity.WARNING, "GPU running hot")]
        case _:
            return [_alert(anomaly, evidence, actions.Severity.WARNING, "anomalous metric")]


def evidence_for(anomaly: Anomaly, settings: PlaybookSettings) -> actions.Evidence:
    """Score, metric, and the series around the anomaly (values and the times they span)."""
    times, values = anomaly.series.times, anomaly.series.values
    i = int(np.searchsorted(times, anomaly.at, side="left")) if len(times) else 0
    if i == len(times) and i > 0:
        i -= 1  # `at` a moment after the newest sample (a live read's rounding): that sample
    lo = max(0, i - settings.evidence_before)
    hi = min(len(values), i + settings.evidence_after + 1)
    around = values[lo:hi]
    before = values[lo:i]
    finite_before = before[np.isfinite(before)]
    baseline = float(np.median(finite_before)) if len(finite_before) else float("nan")
    at_value = float(values[i]) if i < len(values) else float("nan")
    body: dict[str, float | int | str] = {
        "metric": anomaly.metric,
        "score": round(anomaly.score, 4),
        "at": anomaly.at,
        "value": at_value,
        "baseline_median": baseline,
        "series": ",".join(f"{v:.4g}" for v in around),
        "series_from": float(times[lo]) if hi > lo else anomaly.at,
        "series_to": float(times[hi - 1]) if hi > lo else anomaly.at,
    }
    if anomaly.what is What.LEAK:
        body["growth_per_hour"] = growth_per_hour(anomaly.series)
    return body


def growth_per_hour(s: series.Series) -> float:
    """Least-squares slope of the series, per hour (times are seconds)."""
    ok = np.isfinite(s.values)
    if ok.sum() < 2:
        return 0.0
    t, v = s.times[ok], s.values[ok]
    if np.ptp(t) == 0:
        return 0.0
    slope = float(np.polyfit(t - t[0], v, 1)[0])
    return slope * 3600.0


def looks_like_leak(s: series.Series, *, min_points: int = 20, min_fit: float = 0.8) -> bool:
    """Leak-like growth: a steady climb (positive slope, a straight line explains most of it)."""
    ok = np.isfinite(s.values)
    if ok.sum() < min_points:
        return False
    t, v = s.times[ok], s.values[ok]
    if np.ptp(v) == 0 or np.ptp(t) == 0:
        return False
    slope, intercept = np.polyfit(t - t[0], v, 1)
    fitted = slope * (t - t[0]) + intercept
    r2 = 1.0 - float(np.sum((v - fitted) ** 2)) / float(np.sum((v - v.mean()) ** 2))
    return bool(slope > 0 and r2 >= min_fit)


def _pod(snapshot: cluster.ClusterSnapshot, key: str) -> cluster.Pod | None:
    return next((p for p in snapshot.pods if p.key == key), None)


def _pod_latency(
    anomaly: Anomaly,
    snapshot: cluster.ClusterSnapshot,
    evidence: actions.Evidence,
    s: PlaybookSettings,
) -> list[actions.Action]:
    pod = _pod(snapshot, anomaly.subject)
    alert = _alert(anomaly, evidence, actions.Severity.WARNING, "pod latency anomalous")
    if pod is None or pod.service is None:
        return [alert]
    peers = [
        p
        for p in snapshot.pods
        if p.service == pod.service and p.key != pod.key and p.phase is cluster.PodPhase.RUNNING
    ]
    if peers:
        shift = actions.Recommend(
            subject=f"pod/{pod.key}",
            resource="traffic-weight",
            current=1.0,
            recommended=0.0,
            reason=(
                f"{anomaly.metric} of {pod.key} is anomalous (score {anomaly.score:.2f}); "
                f"shift its traffic to the {len(peers)} other running replica(s) of {pod.service}"
            ),
            evidence=evidence,
            policy=POLICY,
        )
        return [shift, alert]
    return [*_scale_out_service(pod.service, anomaly, snapshot, evidence, s), alert]


def _restart_pod(
    anomaly: Anomaly, snapshot: cluster.ClusterSnapshot, evidence: actions.Evidence
) -> list[actions.Action]:
    pod = _pod(snapshot, anomaly.subject)
    alert = _alert(anomaly, evidence, actions.Severity.WARNING, f"pod {anomaly.what}")
    if pod is None:
        return [alert]
    if anomaly.what is What.LEAK:
        why = (
            f"{anomaly.metric} of {pod.key} grows like a leak "
            f"({evidence.get('growth_per_hour', 0.0):.3g}/h, score {anomaly.score:.2f}); "
            "restart it before it runs out"
        )
    else:
        why = f"{anomaly.metric} of {pod.key} is anomalous (score {anomaly.score:.2f}); restart it"
    restart = actions.Restart(
        pod=pod.key, service=pod.service, reason=why, evidence=evidence, policy=POLICY
    )
    return [restart, alert]


def _scale_out_service(
    key: str,
    anomaly: Anomaly,
    snapshot: cluster.ClusterSnapshot,
    evidence: actions.Evidence,
    s: PlaybookSettings,
) -> list[actions.Action]:
    service = snapshot.service(key)
    if service is None:
        return [_alert(anomaly, evidence, actions.Severity.WARNING, "service metric anomalous")]
    target = min(
        service.max_replicas,
        max(service.replicas + 1, math.ceil(service.replicas * s.scale_out_factor)),
    )
    if target <= service.replicas:
        return [
            _alert(
                anomaly,
                evidence,
                actions.Severity.CRITICAL,
                f"{key} anomalous and already at max replicas ({service.max_replicas})",
            )
        ]
    return [
        actions.Scale(
            service=key,
            replicas=target,
            current=service.replicas,
            reason=(
                f"{anomaly.metric} on {anomaly.subject} is anomalous (score {anomaly.score:.2f}); "
                f"scale {key} out {service.replicas} -> {target} to take load off"
            ),
            evidence=evidence,
            policy=POLICY,
        )
    ]


def _cordon(
    node_name: str,
    anomaly: Anomaly,
    snapshot: cluster.ClusterSnapshot,
    evidence: actions.Evidence,
    *,
    drain: bool,
) -> list[actions.Action]:
    node = next((n for n in snapshot.nodes if n.name == node_name), None)
    severity = actions.Severity.CRITICAL
    alert = _alert(anomaly, evidence, severity, f"{anomaly.where} {anomaly.what} on {node_name}")
    if node is None or node.unschedulable:
        return [alert]
    what = "cordon and drain" if drain else "cordon"
    cordon = actions.Cordon(
        node=node_name,
        drain=drain,
        reason=(
            f"{anomaly.metric} on {anomaly.subject} shows {anomaly.what} "
            f"(score {anomaly.score:.2f}); {what} {node_name} so no new work lands there"
        ),
        evidence=evidence,
        policy=POLICY,
    )
    return [cordon, alert]


def _alert(
    anomaly: Anomaly,
    evidence: actions.Evidence,
    severity: actions.Severity,
    summary: str,
) -> actions.Alert:
    kind = "node" if anomaly.where is Where.GPU else anomaly.where.value
    subject_name = (
        anomaly.subject.split("/", 1)[0] if anomaly.where is Where.GPU else anomaly.subject
    )
    return actions.Alert(
        subject=f"{kind}/{subject_name}",
        severity=severity,
        summary=summary,
        reason=(
            f"{anomaly.metric} on {anomaly.where} {anomaly.subject} is anomalous "
            f"(score {anomaly.score:.2f}, value {evidence.get('value')}, "
            f"recent median {evidence.get('baseline_median')})"
        ),
        evidence=evidence,
        policy=POLICY,
    )
