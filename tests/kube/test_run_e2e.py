"""`kopilot run` against the real control plane (dry-run by default, --no-dry-run acts, a second
run repeats nothing), and kopilot restarted mid-run resumes without duplicate or lost actions."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from kubernetes import client as k8s_client

from kopilot.governance import audit, governor, guardrails
from kopilot.kits import clocks
from kopilot.kube import controlplane, resuming, running, worlds
from kopilot.loop import cycles
from kopilot.scaling import planning
from tests.kube import live
from tests.kube.test_leader_election import Crash, CrashOnApply

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def test_kopilot_run_is_dry_by_default_then_acts_once(
    api_client: k8s_client.ApiClient, control_plane: controlplane.ControlPlane, tmp_path: Path
) -> None:
    api = live.make_api(api_client)
    log = tmp_path / "audit.jsonl"
    with live.namespace(api) as ns:
        # min-replicas 2 with 1 replica running and no Prometheus: the data-quality gate's
        # reactive rule raises it to the minimum.
        live.deployment(api, ns, "detector", replicas=1, annotations=live.managed_annotations(lo=2))
        scope = ("--namespace", ns)  # leftovers of other tests are not this test's business
        dry = live.kopilot_run(control_plane.kubeconfig, "--audit-log", str(log), *scope)
        assert dry.returncode == 0, dry.stderr
        assert "dry-run" in dry.stderr
        mine = [r for r in audit.read(log) if r["action"].get("service") == f"{ns}/detector"]
        assert [r["outcome"] for r in mine] == ["dry-run"]
        assert "data-quality gate: no demand history" in mine[0]["action"]["reason"]
        assert live.read_deployment(api, ns, "detector")["spec"]["replicas"] == 1

        acted = live.kopilot_run(
            control_plane.kubeconfig, "--audit-log", str(log), "--no-dry-run", *scope
        )
        assert acted.returncode == 0, acted.stderr
        assert live.read_deployment(api, ns, "detector")["spec"]["replicas"] == 2
        mine = [r for r in audit.read(log) if r["action"].get("service") == f"{ns}/detector"]
        assert [r["outcome"] for r in mine] == ["dry-run", "approved"]

        again = live.kopilot_run(
            control_plane.kubeconfig, "--audit-log", str(log), "--no-dry-run", *scope
        )
        assert again.returncode == 0, again.stderr
        mine = [r for r in audit.read(log) if r["action"].get("service") == f"{ns}/detector"]
        assert len(mine) == 2  # nothing left to do: nothing proposed, nothing repeated
        assert len(live.kopilot_events(api, ns, "KopilotScaled")) == 1


def test_kopilot_run_serves_metrics_leads_reloads_its_policy_and_releases_the_lease(
    api_client: k8s_client.ApiClient, control_plane: controlplane.ControlPlane, tmp_path: Path
) -> None:
    api = live.make_api(api_client)
    policy = tmp_path / "policy.yaml"
    policy.write_text("dry_run: true\n")
    with live.namespace(api) as ns:
        live.deployment(api, ns, "detector", replicas=1, annotations=live.managed_annotations(lo=2))
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kopilot.cli",
                "run",
                "--kubeconfig",
                str(control_plane.kubeconfig),
                "--interval",
                "1",
                "--metrics-host",
                "127.0.0.1",
                "--metrics-port",
                "0",
                "--lease-namespace",
                ns,
                "--identity",
                "kopilot-under-test",
                "--namespace",
                ns,
                "--audit-log",
                str(tmp_path / "audit.jsonl"),
                "--policy",
                str(policy),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
        )
        try:
            assert proc.stdout is not None
            url = ""
            for line in proc.stdout:
                if line.startswith("metrics: "):
                    url = line.split()[1].removesuffix("/metrics")
                    break
            assert url, "kopilot run did not print its metrics address"

            def leading() -> str | None:
                try:
                    text = httpx.get(f"{url}/metrics", timeout=5).text
                except httpx.HTTPError:
                    return None
                return text if "kopilot_leader 1.0" in text else None

            metrics = live.wait_for("kopilot to lead and report it", leading, timeout=60)
            assert 'kopilot_cycles_total{result="ok"}' in metrics
            assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
            assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200
            assert 'kopilot_actions_total{kind="Scale",outcome="dry-run"}' in metrics
            assert live.read_deployment(api, ns, "detector")["spec"]["replicas"] == 1
            # A person edits the policy: kopilot picks it up on its next cycle and acts.
            policy.write_text("dry_run: false\n")
            live.wait_for(
                "the reloaded policy to scale the service to its minimum",
                lambda: (
                    True
                    if live.read_deployment(api, ns, "detector")["spec"]["replicas"] == 2
                    else None
                ),
                timeout=30,
            )
            # Both the start and the reload are in the audit log, with what the reload loosened.
            log = [
                r for r in audit.read(tmp_path / "audit.jsonl") if r["action"]["kind"] == "Policy"
            ]
            assert log[0]["outcome"] == "policy-loaded"
            assert any("dry_run: on -> off" in r["verdict"] for r in log[1:])
            lease_path = f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/kopilot"
            assert (
                api.get(lease_path, "read lease")["spec"]["holderIdentity"] == "kopilot-under-test"
            )
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
            assert not api.get(lease_path, "read lease")["spec"].get("holderIdentity")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_bad_policy_file_is_a_clear_error(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("dry_run: maybe\nmax_cordoned_nodes: -1\n")
    # The policy is checked before any cluster is contacted: no control plane needed.
    result = live.kopilot_run(tmp_path / "no-such-kubeconfig", "--policy", str(policy))
    assert result.returncode == 2
    assert "max_cordoned_nodes" in result.stderr and str(policy) in result.stderr


def test_a_missing_kubeconfig_is_a_clear_error(tmp_path: Path) -> None:
    result = live.kopilot_run(tmp_path / "no-such-kubeconfig")
    assert result.returncode == 2
    assert "cannot load the cluster configuration" in result.stderr


def test_restart_mid_run_resumes_without_duplicate_or_lost_actions(
    api_client: k8s_client.ApiClient, tmp_path: Path
) -> None:
    api = live.make_api(api_client)
    times = np.arange(0.0, 3600.0, 15.0)
    # A staircase: 6 req/s, then 30, then 60: scale-ups at each step.
    source = live.ReplayedDemand(
        times=times, values=np.select([times < 1000, times < 1300], [6.0, 30.0], 60.0)
    )
    log_path = tmp_path / "audit.jsonl"
    made: list[worlds.KubeWorld] = []

    def start() -> tuple[running.Runner, worlds.KubeWorld]:
        world = worlds.KubeWorld.connect(
            api_client,
            clock=clocks.WallClock(),
            rng=random.Random(0),
            demand=source,
            settings=worlds.Settings(demand_history_s=900.0, namespaces=frozenset({ns})),
        )
        made.append(world)
        world.start()
        assert world.wait_synced(30)
        live.wait_for("the service in the cache", lambda: world.workload_kind(key))
        rails = guardrails.Guardrails(dry_run=False)
        runner = running.Runner(
            world,
            [cycles.PolicySlot(policy=planning.ForecastPolicy())],
            governor.Governor(rails),  # a fresh governor: only the audit log remembers
            audit.AuditLog(log_path),
            clock=clocks.WallClock(),
            resume_max_age_s=60.0,
        )
        return runner, world

    def settle(world: worlds.KubeWorld) -> None:
        want = live.read_deployment(api, ns, "detector")["spec"]["replicas"]
        live.wait_for(
            "the cache to catch up",
            lambda: True if (s := world.snapshot(0).service(key)) and s.replicas == want else None,
            timeout=10,
        )

    try:
        with live.namespace(api) as ns:
            key = f"{ns}/detector"
            live.deployment(
                api,
                ns,
                "detector",
                replicas=1,
                annotations=live.managed_annotations(query="q", hi=30),
            )
            first, world1 = start()
            t = 900.0
            while t < 1000.0:
                assert first.step(t).error is None
                settle(world1)
                t += 15.0
            first.world = CrashOnApply(world1)  # kill -9 between the audit record and the apply
            with pytest.raises(Crash):
                first.step(t)
            world1.stop()
            [lost] = [
                r for r in audit.read(log_path) if r["time"] == t and r["outcome"] == "approved"
            ]
            assert live.read_deployment(api, ns, "detector")["spec"]["replicas"] == 1

            second, world2 = start()
            step = second.step(t + 15.0)
            assert step.error is None, step.error
            assert step.restored >= 1
            lost_id = resuming.record_decision_id(lost)
            assert any(lost_id in line and "scaled" in line for line in step.resumed), step.resumed
            settle(world2)
            t += 30.0
            while t < 1500.0:
                s = second.step(t)
                assert s.error is None, s.error
                settle(world2)
                t += 15.0

            # A second restart right after a clean cycle replays nothing new.
            third, _world3 = start()
            again = third.step(t)
            assert all("already applied" in line for line in again.resumed), again.resumed

            records = list(audit.read(log_path))
            approved = [
                r for r in records if r["outcome"] == "approved" and r["action"]["kind"] == "Scale"
            ]
            events = live.kopilot_events(api, ns, "KopilotScaled")
            for r in approved:
                decision = resuming.record_decision_id(r)
                assert sum(1 for e in events if decision in e["message"]) == 1, json.dumps(r)
            assert len(events) == len(approved)
            # The staircase needs ceil(60 / 8) = 8 replicas in the end.
            assert live.read_deployment(api, ns, "detector")["spec"]["replicas"] >= 8
    finally:
        for w in made:
            w.stop()
