"""The idle and rightsizing families through KubeWorld on the real control plane: an idle GPU
service whose minimum allows it is scaled to zero, one whose minimum does not gets a
recommendation Event, and an oversized service gets its rightsizing Event on the workload.

The signals come through the World's signal port from a working fake (`Signals`) with the stream
keys of docs/signals.md; the real Prometheus reader behind that port is tested in
tests/metrics/test_live_signals.py."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from kubernetes import client as k8s_client

from kopilot.cost import idling, resizing
from kopilot.governance import audit, governor, guardrails
from kopilot.kits import clocks
from kopilot.kube import running, worlds
from kopilot.loop import cycles
from kopilot.model import cluster, series
from tests.kube import live

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

STEP = 15.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Reading:
    streams: Mapping[str, series.Series]
    dropped: tuple[str, ...] = ()
    blind: str | None = None


@dataclass(slots=True)
class Signals:
    """Streams as the live reader would give them, built by the test from the cluster's pods."""

    streams: dict[str, series.Series] = field(default_factory=dict)

    def read(self, now: float) -> Reading:
        return Reading(streams=dict(self.streams))


def flat(level: float, now: float, noise: float = 0.0, seed: int = 0) -> series.Series:
    t = np.arange(now - 7200.0, now + 1.0, STEP)
    rng = np.random.default_rng(seed)
    return series.Series.of(t, np.abs(level + noise * rng.standard_normal(len(t))))


def test_idle_services_are_scaled_or_told_and_oversized_ones_get_their_event(
    api_client: k8s_client.ApiClient, tmp_path: Path
) -> None:
    api = live.make_api(api_client)
    with (
        live.namespace(api) as ns,
        live.node_group(api, 1, gpus=2) as sleepy_nodes,
        live.node_group(api, 1, gpus=2) as pinned_nodes,
        live.node_group(api, 1, gpus=0) as cpu_nodes,
    ):
        live.deployment(
            api, ns, "sleepy", replicas=2, gpus=1, group_nodes=sleepy_nodes,
            annotations=live.managed_annotations(lo=0, hi=4),
        )  # fmt: skip
        live.deployment(
            api, ns, "pinned", replicas=1, gpus=1, group_nodes=pinned_nodes,
            annotations=live.managed_annotations(lo=1, hi=4),
        )  # fmt: skip
        live.deployment(
            api, ns, "fat", replicas=1, group_nodes=cpu_nodes,
            annotations=live.managed_annotations(lo=1, hi=4),
        )  # fmt: skip
        signals = Signals()
        world = worlds.KubeWorld.connect(
            api_client,
            clock=clocks.WallClock(),
            rng=random.Random(0),
            signals=signals,
            settings=worlds.Settings(namespaces=frozenset({ns})),
        )
        world.start()
        try:
            assert world.wait_synced(60.0)

            def running_pods() -> list[cluster.Pod] | None:
                snap = world.snapshot(time.time())
                mine = [
                    p
                    for p in snap.pods
                    if p.namespace == ns and p.phase is cluster.PodPhase.RUNNING
                ]
                return mine if len(mine) == 4 and len(snap.services) == 3 else None

            pods = live.wait_for("4 running pods of 3 services", running_pods)
            now = time.time()
            for node in sleepy_nodes + pinned_nodes:
                for gpu in range(2):
                    signals.streams[f"gpu/{node}/{gpu}/utilization"] = flat(0.0, now)
            [fat] = [p for p in pods if p.service == f"{ns}/fat"]
            prefix = f"pod/{ns}/{fat.name}"
            signals.streams[f"{prefix}/cpu_cores"] = flat(0.01, now, noise=0.001, seed=1)
            signals.streams[f"{prefix}/memory_mib"] = flat(20.0, now, noise=1.0, seed=2)

            runner = running.Runner(
                world,
                [
                    cycles.PolicySlot(policy=idling.IdlePolicy(), needs=frozenset({"metrics"})),
                    cycles.PolicySlot(policy=resizing.RightsizingPolicy()),
                ],
                governor.Governor(guardrails.Guardrails(dry_run=False)),
                audit.AuditLog(tmp_path / "audit.jsonl"),
                clock=clocks.WallClock(),
            )
            step = runner.step(now)
            assert step.report is not None and not step.report.failures, step
            assert live.read_deployment(api, ns, "sleepy")["spec"]["replicas"] == 0
            assert live.read_deployment(api, ns, "pinned")["spec"]["replicas"] == 1

            def told(name: str) -> list[dict[str, object]] | None:
                found = [
                    e
                    for e in live.kopilot_events(api, ns, "KopilotRecommendation")
                    if e["involvedObject"]["name"] == name
                    and e["involvedObject"]["kind"] == "Deployment"
                ]
                return found or None

            [pinned] = live.wait_for("the pinned service's Event", lambda: told("pinned"))
            assert "replicas 1 -> 0" in str(pinned["message"])
            assert "GPU-hours held idle" in str(pinned["message"])
            [sized] = live.wait_for("the fat service's Event", lambda: told("fat"))
            assert "pod/cpu 0.1 ->" in str(sized["message"])
            assert "cost/rightsizing" in str(sized["message"])
        finally:
            world.stop()
