"""MIG repartitioning live, on kwok MIG nodes of the real control plane: the family proposes a
named GPU-operator config, a person approves it, a PodDisruptionBudget holds it back, and once
the budget allows, the GPU pod is evicted and `nvidia.com/mig.config` carries the new config."""

from __future__ import annotations

import contextlib
import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s_client

from kopilot.governance import approvals, audit, governor, policyfile, verdicts
from kopilot.kits import clocks
from kopilot.kube import apis, failures, running, worlds
from kopilot.loop import cycles
from kopilot.scheduling import migconfigs, repartitioning
from tests.kube import live

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def bare_pod(
    ns: str, name: str, resource: str, *, node: str | None = None, select: str = ""
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "model",
                "image": "registry.invalid/kopilot/detector:test",
                "resources": {"requests": {resource: "1"}, "limits": {resource: "1"}},
            }
        ],
        "tolerations": [{"operator": "Exists"}],
    }
    if node:
        spec["nodeName"] = node
    if select:
        spec["nodeSelector"] = {"kopilot.test/mig": select}
    return {"metadata": {"name": name, "namespace": ns, "labels": {"app": name}}, "spec": spec}


def label_of(api: apis.Api, node: str) -> str | None:
    labels = api.get(f"/api/v1/nodes/{node}", "read node")["metadata"].get("labels") or {}
    return labels.get(migconfigs.LABEL_CONFIG)


@contextlib.contextmanager
def mig_node_with_demand(api: apis.Api) -> Iterator[tuple[str, str]]:
    """A kwok A100-80GB node labelled all-7g.80gb with one busy 7g pod (guarded by a PDB), and
    seven pending pods asking for 1g.10gb slices that no node has: (namespace, node)."""
    tag = uuid.uuid4().hex[:8]
    labels = {
        "nvidia.com/gpu.product": "A100-80GB",
        migconfigs.LABEL_GPU_COUNT: "2",
        migconfigs.LABEL_CONFIG: "all-7g.80gb",
        migconfigs.LABEL_STATE: "success",
        "kopilot.test/mig": tag,
    }
    slices = {"nvidia.com/mig-7g.80gb": "2"}
    with (
        live.namespace(api) as ns,
        live.node_group(api, 1, gpus=0, labels=labels, extended=slices) as [node],
    ):
        pods = f"/api/v1/namespaces/{ns}/pods"
        api.post(pods, bare_pod(ns, "busy", "nvidia.com/mig-7g.80gb", node=node), "busy pod")
        for i in range(7):
            api.post(pods, bare_pod(ns, f"want-{i}", "nvidia.com/mig-1g.10gb", select=tag), "pod")
        pdb = {
            "metadata": {"name": "busy", "namespace": ns},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "busy"}}},
        }
        api.post(f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets", pdb, "pdb")

        def pdb_counts() -> bool | None:
            got = api.get(f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/busy", "pdb")
            return True if (got.get("status") or {}).get("currentHealthy") == 1 else None

        live.wait_for("the busy pod counted healthy by its PDB", pdb_counts)
        yield ns, node


def test_a_repartition_waits_for_approval_and_a_pdb_then_relabels_the_node(
    api_client: k8s_client.ApiClient, tmp_path: Path
) -> None:
    api = live.make_api(api_client)
    with mig_node_with_demand(api) as (ns, node):
        pods = f"/api/v1/namespaces/{ns}/pods"
        world = worlds.KubeWorld.connect(api_client, clock=clocks.WallClock(), rng=random.Random(0))
        world.start()
        try:
            assert world.wait_synced(60.0)
            live.wait_for(
                "the pods in the cache",
                lambda: (
                    True if len([p for p in world.pods.items() if p.startswith(ns)]) == 8 else None
                ),
            )
            held = policyfile.parse("dry_run: false\ncooldown_s: {}\n", "test")
            queue = approvals.ApprovalQueue(tmp_path / "approvals.jsonl")
            runner = running.Runner(
                world,
                [cycles.PolicySlot(policy=repartitioning.RepartitionPolicy(), family="mig")],
                governor.Governor(held.rails),
                audit.AuditLog(tmp_path / "audit.jsonl"),
                clock=clocks.WallClock(),
                queue=queue,
            )

            # 1. Proposed, waiting for a person: nothing changes.
            step = runner.step(time.time())
            assert step.report is not None, step
            [verdict] = [v for v in step.report.judged if v.action.target == f"node/{node}"]
            assert verdict.outcome is verdicts.Outcome.PENDING_APPROVAL
            assert verdict.action.evidence["mig_config"] == "all-1g.10gb"
            assert verdict.action.evidence["pods_to_move"] == 1
            assert label_of(api, node) == "all-7g.80gb"

            def approve_pending() -> None:
                now = time.time()
                for rid, r in queue.requests(now).items():
                    if r.state == "pending":
                        queue.decide(rid, approve=True, approver=approvals.os_user("test"), now=now)

            # 2. Approved, but the PDB does not allow the busy pod to go: the label stays.
            approve_pending()
            step = runner.step(time.time())
            assert step.report is not None
            assert any("blocked by a PodDisruptionBudget" in f for f in step.report.failures)
            assert label_of(api, node) == "all-7g.80gb"
            api.get(f"{pods}/busy", "the busy pod is still there")

            # 3. The budget is lifted: the pod is evicted, then the node is relabelled.
            api.call("DELETE", f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/busy", "d")
            approve_pending()
            step = runner.step(time.time())
            assert step.report is not None and not step.report.failures, step.report
            assert label_of(api, node) == "all-1g.10gb"
            try:
                busy = api.get(f"{pods}/busy", "read the busy pod")
                assert busy["metadata"].get("deletionTimestamp")
            except failures.NotFoundError:
                pass
            events = [
                e
                for e in live.kopilot_events(api, "default", "KopilotRepartitioned")
                if e["involvedObject"]["name"] == node
            ]
            assert events and "all-7g.80gb -> all-1g.10gb" in events[0]["message"]
        finally:
            world.stop()


def test_kopilot_run_proposes_it_and_leaves_it_to_a_person(
    api_client: k8s_client.ApiClient, kubeconfig: Path, tmp_path: Path
) -> None:
    """The mig family is a slot of `kopilot run`: acting, yet the Repartition waits in the
    approvals queue and the node keeps its label."""
    api = live.make_api(api_client)
    policy = tmp_path / "policy.yaml"
    policy.write_text("dry_run: false\n")
    log, queue = tmp_path / "audit.jsonl", tmp_path / "approvals.jsonl"
    with mig_node_with_demand(api) as (ns, node):
        run = live.kopilot_run(
            kubeconfig,
            "--policy", str(policy), "--audit-log", str(log), "--approvals", str(queue),
            "--namespace", ns,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr
        records = [r for r in audit.read(log) if r["action"].get("target") == f"node/{node}"]
        assert [(r["action"]["kind"], r["outcome"]) for r in records] == [
            ("Repartition", "pending-approval")
        ], records
        assert records[0]["action"]["policy"] == "scheduling/mig-repartition"
        pending = approvals.ApprovalQueue(queue).requests(time.time())
        assert [r.state for r in pending.values()] == ["pending"]
        assert label_of(api, node) == "all-7g.80gb"
