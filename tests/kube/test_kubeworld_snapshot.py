"""KubeWorld's snapshot of a real control plane: nodes with GPUs in use, pods with their service,
managed services from annotations, bad annotations named, watch updates, demand history."""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import pytest
from kubernetes import client as k8s_client

from kopilot.kits import clocks
from kopilot.kube import notes, worlds
from kopilot.model import cluster, errors
from tests.kube import live

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture
def world_factory(
    api_client: k8s_client.ApiClient,
) -> Iterator[list[worlds.KubeWorld]]:
    made: list[worlds.KubeWorld] = []
    yield made
    for w in made:
        w.stop()


def start_world(
    api_client: k8s_client.ApiClient,
    made: list[worlds.KubeWorld],
    demand: worlds.DemandSource | None = None,
) -> worlds.KubeWorld:
    world = worlds.KubeWorld.connect(
        api_client,
        clock=clocks.WallClock(),
        rng=random.Random(0),
        demand=demand,
        settings=worlds.Settings(demand_history_s=600.0, demand_step_s=15.0),
    )
    made.append(world)
    world.start()
    assert world.wait_synced(60.0)
    return world


def test_snapshot_of_nodes_pods_and_managed_services(
    api_client: k8s_client.ApiClient, world_factory: list[worlds.KubeWorld]
) -> None:
    api = live.make_api(api_client)
    with live.namespace(api) as ns, live.node_group(api, 2, gpus=4) as nodes:
        live.deployment(
            api,
            ns,
            "detector",
            replicas=3,
            gpus=1,
            group_nodes=nodes,
            annotations=live.managed_annotations(capacity=12.5, cold_start=90, lo=1, hi=8),
        )
        live.deployment(api, ns, "plain", replicas=1, group_nodes=nodes)
        live.deployment(
            api, ns, "broken", replicas=1, group_nodes=nodes, annotations={notes.MANAGED: "true"}
        )
        world = start_world(api_client, world_factory)

        def settled() -> cluster.ClusterSnapshot | None:
            snap = world.snapshot(1000.0)
            mine = [p for p in snap.pods if p.namespace == ns and p.service == f"{ns}/detector"]
            running = [p for p in mine if p.phase is cluster.PodPhase.RUNNING and p.node in nodes]
            return snap if len(running) == 3 else None

        snap = live.wait_for("3 running detector pods in the snapshot", settled)
        [svc] = [s for s in snap.services if s.namespace == ns]
        assert (svc.name, svc.replicas, svc.capacity_rps, svc.cold_start_s) == (
            "detector",
            3,
            12.5,
            90.0,
        )
        assert (svc.min_replicas, svc.max_replicas, svc.request.gpus) == (1, 8, 1)
        mine = {n.name: n for n in snap.nodes if n.name in nodes}
        assert set(mine) == set(nodes)
        assert all(len(n.gpus) == 4 and n.ready and not n.unschedulable for n in mine.values())
        assert all(g.model == "A100-80GB" for n in mine.values() for g in n.gpus)
        used = sum(g.used_milli for n in mine.values() for g in n.gpus)
        assert used == 3 * 1000  # three one-GPU replicas
        assert any(
            f"Deployment {ns}/broken" in p and "capacity-rps is missing" in p
            for p in world.problems
        )
        assert not any(s.name in ("plain", "broken") for s in snap.services if s.namespace == ns)
        assert any(p.service == f"{ns}/plain" for p in snap.pods)  # its pods are still seen

        # A change arrives through the watch, without listing again.
        relists = world.deployments.relists
        api.patch(
            f"/apis/apps/v1/namespaces/{ns}/deployments/detector/scale",
            {"spec": {"replicas": 5}},
            "scale",
        )

        def rescaled() -> cluster.ModelService | None:
            s = world.snapshot(1001.0).service(f"{ns}/detector")
            return s if s is not None and s.replicas == 5 else None

        live.wait_for("the watch to deliver replicas=5", rescaled, timeout=20)
        assert world.deployments.relists == relists
        # The snapshot does not change under the policies' feet.
        assert snap.service(f"{ns}/detector") is not None
        assert snap.service(f"{ns}/detector").replicas == 3  # type: ignore[union-attr]


def test_demand_history_comes_from_the_source_and_failures_leave_it_out(
    api_client: k8s_client.ApiClient, world_factory: list[worlds.KubeWorld]
) -> None:
    api = live.make_api(api_client)
    times = np.arange(0.0, 3600.0, 15.0)
    source = live.ReplayedDemand(times=times, values=times / 100.0)
    with live.namespace(api) as ns:
        live.deployment(
            api,
            ns,
            "web",
            replicas=1,
            annotations=live.managed_annotations(
                query='sum(rate(http_requests_total{app="web"}[1m]))'
            ),
        )
        live.deployment(api, ns, "quiet", replicas=1, annotations=live.managed_annotations())
        world = start_world(api_client, world_factory, demand=source)
        live.wait_for(
            "both services in the snapshot",
            lambda: (
                True
                if world.snapshot(0).service(f"{ns}/quiet")
                and world.snapshot(0).service(f"{ns}/web")
                else None
            ),
        )
        snap = world.snapshot(1800.0)
        history = snap.demand[f"{ns}/web"]
        assert history.times[0] == 1200.0 and history.times[-1] == 1800.0  # the last 600 s
        assert history.last() == pytest.approx(18.0)
        assert f"{ns}/quiet" not in snap.demand  # no demand-query annotation: no history

        source.fail_with = errors.TemporaryError("Prometheus at http://127.0.0.1:1 is unreachable")
        snap = world.snapshot(1815.0)
        assert f"{ns}/web" not in snap.demand
        assert any(
            f"service {ns}/web: demand query failed" in p and "unreachable" in p
            for p in world.problems
        )
