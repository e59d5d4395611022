"""Leader election on a real Lease: one leader at a time, a dead leader fenced before anybody
takes over, a clean release hands over at once, and a hand-over loses no decision."""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import pytest
from kubernetes import client as k8s_client

from kopilot.governance import audit, governor, guardrails
from kopilot.kits import clocks
from kopilot.kube import apis, leases, resuming, running, worlds
from kopilot.loop import cycles
from kopilot.loop import worlds as loop_worlds
from kopilot.model import actions, cluster
from kopilot.scaling import planning
from tests.kube import live

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

FAST = {"lease_duration_s": 3.0, "renew_deadline_s": 2.0, "retry_period_s": 0.2}


def elector(api: apis.Api, ns: str, who: str) -> leases.LeaseElector:
    return leases.LeaseElector(
        api,
        identity=who,
        clock=clocks.WallClock(),
        settings=leases.LeaseSettings(namespace=ns, name="kopilot", **FAST),
    )


def test_one_leader_fencing_before_takeover_and_clean_release(
    api_client: k8s_client.ApiClient,
) -> None:
    api = live.make_api(api_client)
    with live.namespace(api) as ns:
        a, b = elector(api, ns, "a"), elector(api, ns, "b")
        assert a.tick()
        assert not b.tick()
        end = time.monotonic() + 2.0
        while time.monotonic() < end:  # both keep trying: only one may ever lead
            la, lb = a.tick(), b.tick()
            assert not (la and lb)
            assert la
            time.sleep(0.05)
        lease = api.get(f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/kopilot", "read")
        assert lease["spec"]["holderIdentity"] == "a"

        # a dies (stops renewing, no release). b must wait out the lease; a fences itself first.
        died = time.monotonic()
        while not b.tick():
            assert time.monotonic() - died < 10, "b never took over"
            time.sleep(0.05)
        took_over = time.monotonic() - died
        assert took_over >= FAST["lease_duration_s"] - FAST["retry_period_s"]
        assert not a.is_leader()  # fenced: its renew deadline passed before b could take over
        lease = api.get(f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/kopilot", "read")
        assert lease["spec"]["holderIdentity"] == "b"
        assert lease["spec"]["leaseTransitions"] == 1

        # a comes back: b holds the lease, a stays a follower.
        assert not a.tick(time.time() + 1.0)
        # b shuts down cleanly: a takes over without waiting for expiry.
        assert b.release()
        released = time.monotonic()
        a._last_try = -float("inf")  # ask now rather than after the retry period
        while not a.tick():
            assert time.monotonic() - released < FAST["lease_duration_s"], (
                "release did not hand over"
            )
            time.sleep(0.05)
        assert not b.is_leader()


class Crash(BaseException):
    """The process dies here (kill -9): not an error anything may catch."""


class CrashOnApply:
    """A World that dies on its first apply: the audit log has the verdict, the cluster not."""

    def __init__(self, world: loop_worlds.World) -> None:
        self._world = world

    def snapshot(self, now: float) -> cluster.ClusterSnapshot:
        return self._world.snapshot(now)

    def apply(self, action: actions.Action, now: float) -> loop_worlds.Applied:
        raise Crash(f"died applying {actions.describe(action)}")


def test_handover_loses_no_decision(api_client: k8s_client.ApiClient, tmp_path: Path) -> None:
    api = live.make_api(api_client)
    times = np.arange(0.0, 3600.0, 15.0)
    source = live.ReplayedDemand(times=times, values=np.where(times < 1000.0, 6.0, 40.0))
    shared_log = tmp_path / "audit.jsonl"  # on a volume both replicas mount
    made: list[worlds.KubeWorld] = []
    try:
        with live.namespace(api) as ns:
            live.deployment(
                api,
                ns,
                "detector",
                replicas=1,
                annotations=live.managed_annotations(query="q", hi=30),
            )
            key = f"{ns}/detector"

            def replica(who: str) -> tuple[running.Runner, worlds.KubeWorld, leases.LeaseElector]:
                el = elector(api, ns, who)
                world = worlds.KubeWorld.connect(
                    api_client,
                    clock=clocks.WallClock(),
                    rng=random.Random(0),
                    demand=source,
                    settings=worlds.Settings(
                        identity=who, demand_history_s=900.0, namespaces=frozenset({ns})
                    ),
                    may_act=el.is_leader,
                )
                made.append(world)
                world.start()
                assert world.wait_synced(30)
                live.wait_for("the service in the cache", lambda: world.workload_kind(key))
                runner = running.Runner(
                    world,
                    [cycles.PolicySlot(policy=planning.ForecastPolicy())],
                    governor.Governor(guardrails.Guardrails(dry_run=False)),
                    audit.AuditLog(shared_log),
                    clock=clocks.WallClock(),
                    elector=el,
                    resume_max_age_s=3600.0,
                )
                return runner, world, el

            ra, wa, _ea = replica("a")
            rb, _wb, _eb = replica("b")
            t = 900.0
            # a leads through the quiet part; b stands by.
            while t < 1000.0:
                sa, sb = ra.step(t), rb.step(t)
                assert sa.leader and not sb.leader
                t += 15.0
            # Demand jumps; a decides to scale up, writes the verdict, and dies before applying.
            ra.world = CrashOnApply(wa)
            with pytest.raises(Crash):
                ra.step(t)
            [decided] = [
                r
                for r in audit.read(shared_log)
                if r["time"] == t and r["action"]["kind"] == "Scale"
            ]
            lost_id = resuming.record_decision_id(decided)
            assert live.read_deployment(api, ns, "detector")["spec"]["replicas"] == 1
            wa.stop()
            # b takes over once the lease expires, and finishes a's decision first.
            died = time.monotonic()
            while True:
                step = rb.step(t + 15.0)
                if step.leader:
                    break
                assert time.monotonic() - died < 10
                time.sleep(0.1)
            assert any(lost_id in line for line in step.resumed), step.resumed
            dep = live.read_deployment(api, ns, "detector")
            assert dep["spec"]["replicas"] >= decided["action"]["replicas"]
            events = live.kopilot_events(api, ns, "KopilotScaled")
            carried = [e for e in events if lost_id in e["message"]]
            assert len(carried) == 1 and carried[0]["reportingInstance"] == "b"
            assert step.restored > 0  # b's governor knows what a approved
            # Every approved Scale decision reached the cluster exactly once.
            approved = [
                resuming.record_decision_id(r)
                for r in audit.read(shared_log)
                if r["outcome"] == "approved" and r["action"]["kind"] == "Scale"
            ]
            for decision in approved:
                assert sum(1 for e in events if decision in e["message"]) == 1, decision
    finally:
        for w in made:
            w.stop()
