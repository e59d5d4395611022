"""KubeWorld applies actions through the real API: scale subresource with a trail of annotations
and Events, idempotent replays, cordon/uncordon, evictions that respect PodDisruptionBudgets,
pod binding, alerts, and permanent errors reported without retry loops."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s_client

from kopilot.kits import clocks
from kopilot.kube import notes, resuming, worlds
from kopilot.model import actions, cluster
from tests.kube import live

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

T0 = 1_800_000_000.0


@pytest.fixture
def world(api_client: k8s_client.ApiClient) -> Iterator[worlds.KubeWorld]:
    w = worlds.KubeWorld.connect(api_client, clock=clocks.WallClock(), rng=random.Random(0))
    w.start()
    assert w.wait_synced(60.0)
    try:
        yield w
    finally:
        w.stop()


def running_pods(api: Any, ns: str, app: str) -> list[dict[str, Any]]:
    items = api.get(f"/api/v1/namespaces/{ns}/pods", "list pods", labelSelector=f"app={app}")[
        "items"
    ]
    out = []
    for p in items:
        conditions = p.get("status", {}).get("conditions") or []
        if p["status"].get("phase") == "Running" and any(
            c["type"] == "Ready" and c["status"] == "True" for c in conditions
        ):
            out.append(p)
    return out


def test_scale_leaves_a_trail_and_a_replayed_decision_is_a_no_op(
    api_client: k8s_client.ApiClient, world: worlds.KubeWorld
) -> None:
    api = live.make_api(api_client)
    with live.namespace(api) as ns:
        live.deployment(api, ns, "web", replicas=1, annotations=live.managed_annotations())
        live.wait_for("the service in the cache", lambda: world.workload_kind(f"{ns}/web"))
        action = actions.Scale(
            service=f"{ns}/web", replicas=4, current=1, reason="forecast 30 req/s", policy="kopilot"
        )
        result = world.apply(action, T0)
        assert result.ok, result.detail
        dep = live.read_deployment(api, ns, "web")
        assert dep["spec"]["replicas"] == 4
        written = dep["metadata"]["annotations"]
        decision = resuming.decision_id(action, T0)
        assert written[notes.DECISION_ID] == decision
        assert (
            "scale" in written[notes.LAST_ACTION]
            and "forecast 30 req/s" in written[notes.LAST_ACTION]
        )
        [event] = live.kopilot_events(api, ns, "KopilotScaled")
        assert event["involvedObject"]["kind"] == "Deployment"
        assert event["involvedObject"]["name"] == "web"
        assert decision in event["message"]

        # The same decision again (a restarted kopilot replaying it): nothing happens.
        api.patch(
            f"/apis/apps/v1/namespaces/{ns}/deployments/web/scale",
            {"spec": {"replicas": 2}},
            "scale",
        )
        again = world.apply(action, T0)
        assert again.ok and "already applied" in again.detail
        assert live.read_deployment(api, ns, "web")["spec"]["replicas"] == 2
        assert len(live.kopilot_events(api, ns, "KopilotScaled")) == 1
        # An older decision than the object's last one is superseded, not applied.
        older = dataclasses_replace(action, replicas=9)
        stale = world.apply(older, T0 - 60)
        assert stale.ok and "superseded" in stale.detail
        assert live.read_deployment(api, ns, "web")["spec"]["replicas"] == 2


def dataclasses_replace(action: actions.Scale, **changes: Any) -> actions.Scale:
    import dataclasses

    return dataclasses.replace(action, **changes)


def test_permanent_errors_are_reported_once_not_retried(
    api_client: k8s_client.ApiClient, world: worlds.KubeWorld
) -> None:
    retries = world.api.retrier.retries
    missing = actions.Scale(service="nowhere/ghost", replicas=2, current=1, reason="r")
    result = world.apply(missing, T0)
    assert not result.ok
    assert "HTTP 404" in result.detail
    invalid = actions.Cordon(node="Not_A_Valid_Name!", reason="r")
    result = world.apply(invalid, T0)
    assert not result.ok and "HTTP 404" in result.detail
    assert world.api.retrier.retries == retries


def test_cordon_and_uncordon_with_events(
    api_client: k8s_client.ApiClient, world: worlds.KubeWorld
) -> None:
    api = live.make_api(api_client)
    with live.node_group(api, 1, gpus=1) as [node]:
        result = world.apply(actions.Cordon(node=node, reason="NotReady for 90 s"), T0)
        assert result.ok, result.detail
        raw = api.get(f"/api/v1/nodes/{node}", "read node")
        assert raw["spec"]["unschedulable"] is True
        assert "NotReady for 90 s" in raw["metadata"]["annotations"][notes.LAST_ACTION]
        events = [
            e
            for e in live.kopilot_events(api, "default", "KopilotCordoned")
            if e["involvedObject"]["name"] == node
        ]
        assert len(events) == 1 and events[0]["type"] == "Warning"
        result = world.apply(actions.Cordon(node=node, uncordon=True, reason="Ready again"), T0 + 1)
        assert result.ok, result.detail
        assert not api.get(f"/api/v1/nodes/{node}", "read node")["spec"].get("unschedulable")


def test_restart_evicts_but_a_pod_disruption_budget_blocks_it(
    api_client: k8s_client.ApiClient, world: worlds.KubeWorld
) -> None:
    api = live.make_api(api_client)
    with live.namespace(api) as ns, live.node_group(api, 1, gpus=0) as nodes:
        live.deployment(api, ns, "web", replicas=2, group_nodes=nodes)
        pods = live.wait_for(
            "2 running pods",
            lambda: (
                running_pods(api, ns, "web") if len(running_pods(api, ns, "web")) == 2 else None
            ),
        )
        api.post(
            f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets",
            {
                "metadata": {"name": "web"},
                "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
            },
            "create pdb",
        )

        def pdb_counted() -> bool | None:
            status = (
                api.get(
                    f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/web", "read pdb"
                ).get("status")
                or {}
            )
            return (
                True
                if status.get("currentHealthy") == 2 and "disruptionsAllowed" in status
                else None
            )

        live.wait_for("the disruption controller to count the pods", pdb_counted)
        victim = pods[0]["metadata"]["name"]
        blocked = world.apply(actions.Restart(pod=f"{ns}/{victim}", reason="stuck"), T0)
        assert not blocked.ok
        assert "PodDisruptionBudget" in blocked.detail
        pod = api.get(f"/api/v1/namespaces/{ns}/pods/{victim}", "read pod")
        assert not pod["metadata"].get("deletionTimestamp")

        api.patch(
            f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/web",
            {"spec": {"minAvailable": 1}},
            "relax pdb",
        )
        live.wait_for(
            "the PDB to allow one disruption",
            lambda: (
                True
                if (
                    api.get(
                        f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/web", "read"
                    ).get("status")
                    or {}
                ).get("disruptionsAllowed")
                == 1
                else None
            ),
        )
        evicted = world.apply(actions.Restart(pod=f"{ns}/{victim}", reason="stuck"), T0 + 1)
        assert evicted.ok, evicted.detail
        assert "evicted" in evicted.detail
        [event] = live.kopilot_events(api, ns, "KopilotRestarted")
        assert event["involvedObject"]["name"] == victim
        # Evicting it again is harmless: it is gone or going.
        assert world.apply(actions.Restart(pod=f"{ns}/{victim}", reason="stuck"), T0 + 2).ok


def test_bind_a_pending_pod_records_the_gpus(
    api_client: k8s_client.ApiClient, world: worlds.KubeWorld
) -> None:
    api = live.make_api(api_client)
    with live.namespace(api) as ns, live.node_group(api, 1, gpus=4) as [node]:
        api.post(
            f"/api/v1/namespaces/{ns}/pods",
            {
                "metadata": {"name": "job"},
                "spec": {
                    "schedulerName": "kopilot",  # no such scheduler runs: it stays Pending
                    "containers": [
                        {
                            "name": "m",
                            "image": "registry.invalid/x",
                            "resources": {"limits": {"nvidia.com/gpu": "2"}},
                        }
                    ],
                    "tolerations": [{"operator": "Exists"}],
                },
            },
            "create pod",
        )
        action = actions.Bind(
            pod=f"{ns}/job", node=node, gpu_indices=(2, 3), reason="least fragmentation"
        )
        result = world.apply(action, T0)
        assert result.ok, result.detail
        pod = api.get(f"/api/v1/namespaces/{ns}/pods/job", "read pod")
        assert pod["spec"]["nodeName"] == node
        assert pod["metadata"]["annotations"][cluster.ANNOTATION_GPU_INDICES] == "2,3"
        assert pod["metadata"]["annotations"][notes.DECISION_ID] == resuming.decision_id(action, T0)
        assert world.apply(action, T0 + 1).ok  # already bound there: fine
        wrong = world.apply(actions.Bind(pod=f"{ns}/job", node="elsewhere", reason="r"), T0 + 2)
        assert not wrong.ok and f"already bound to {node}" in wrong.detail

        def gpus_seen() -> list[int] | None:
            snap = world.snapshot(T0)
            [n] = [n for n in snap.nodes if n.name == node]
            used = [g.used_milli for g in n.gpus]
            return used if sum(used) == 2000 else None

        assert live.wait_for("the binding in the snapshot", gpus_seen) == [0, 0, 1000, 1000]


def test_alert_becomes_a_warning_event_on_the_workload(
    api_client: k8s_client.ApiClient, world: worlds.KubeWorld
) -> None:
    api = live.make_api(api_client)
    with live.namespace(api) as ns:
        live.deployment(api, ns, "web", replicas=1, annotations=live.managed_annotations())
        live.wait_for("the service in the cache", lambda: world.workload_kind(f"{ns}/web"))
        alert = actions.Alert(
            subject=f"service/{ns}/web", summary="p99 latency anomaly", reason="NAB score 0.97"
        )
        assert world.apply(alert, T0).ok
        [event] = live.kopilot_events(api, ns, "KopilotAlert")
        assert event["type"] == "Warning"
        assert event["involvedObject"]["kind"] == "Deployment"
        assert "p99 latency anomaly" in event["message"]
    bad = world.apply(actions.Alert(subject="weird", summary="s", reason="r"), T0)
    assert not bad.ok and "cannot tell which object" in bad.detail
