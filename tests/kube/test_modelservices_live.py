"""ModelServices on the real control plane: the API server rejects bad specs with a message
(schema and CEL), kopilot scales the target of a usable one, and reports an unusable one on its
status without acting on it."""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s_client

from kopilot.governance import audit, governor, guardrails
from kopilot.kits import clocks
from kopilot.kube import apis, failures, modelservices, running, worlds
from kopilot.loop import cycles
from kopilot.scaling import planning
from tests.kube import live

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CRD = Path(__file__).resolve().parents[2] / "deploy/helm/kopilot/crds/modelservices.kopilot.io.yaml"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def install_crd(api: apis.Api) -> None:
    body = yaml.safe_load(CRD.read_text())
    with contextlib.suppress(failures.ConflictError):  # installed earlier in this session
        api.post(CRDS, body, "create the ModelService CRD")

    def established() -> bool | None:
        crd = api.get(f"{CRDS}/{body['metadata']['name']}", "read the CRD")
        conditions = (crd.get("status") or {}).get("conditions") or []
        return (
            True
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions)
            else None
        )

    live.wait_for("the ModelService CRD to be established", established)


@pytest.fixture(scope="module")
def crd(api_client: k8s_client.ApiClient) -> apis.Api:
    api = live.make_api(api_client)
    install_crd(api)
    return api


def model_service(name: str, target: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": modelservices.API_VERSION,
        "kind": "ModelService",
        "metadata": {"name": name},
        "spec": {"targetRef": {"kind": "Deployment", "name": target}, **spec},
    }


def create(api: apis.Api, ns: str, body: dict[str, Any]) -> dict[str, Any]:
    return api.post(
        f"/apis/{modelservices.API_VERSION}/namespaces/{ns}/modelservices", body, "create"
    )


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        (
            {"capacityPerReplica": 10, "minReplicas": 5, "maxReplicas": 2},
            "minReplicas must be less than or equal to maxReplicas",
        ),
        ({"capacityPerReplica": 0}, "spec.capacityPerReplica: Invalid value: 0"),
        ({}, "spec.capacityPerReplica: Required value"),
        ({"capacityPerReplica": 10, "minReplicas": -1}, "spec.minReplicas"),
        ({"capacityPerReplica": "fast"}, "spec.capacityPerReplica: Invalid value"),
    ],
)
def test_the_api_server_rejects_a_bad_spec_with_its_reason(
    crd: apis.Api, spec: dict[str, Any], said: str
) -> None:
    with live.namespace(crd) as ns:
        with pytest.raises(failures.RejectedError) as caught:
            create(crd, ns, model_service("bad", "detector", **spec))
        assert "HTTP 422" in str(caught.value) and said in str(caught.value)
        bad_kind = model_service("bad", "detector", capacityPerReplica=10)
        bad_kind["spec"]["targetRef"]["kind"] = "Pod"
        with pytest.raises(failures.RejectedError, match=r"spec.targetRef.kind: Unsupported value"):
            create(crd, ns, bad_kind)


@pytest.fixture
def world(api_client: k8s_client.ApiClient, crd: apis.Api) -> Iterator[worlds.KubeWorld]:
    w = worlds.KubeWorld.connect(api_client, clock=clocks.WallClock(), rng=random.Random(0))
    w.start()
    assert w.crd_served and w.wait_synced(60.0)
    try:
        yield w
    finally:
        w.stop()


def ready_condition(api: apis.Api, ns: str, name: str) -> dict[str, Any] | None:
    obj = api.get(f"/apis/{modelservices.API_VERSION}/namespaces/{ns}/modelservices/{name}", "read")
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Ready"), None)


def test_a_usable_model_service_is_scaled_and_an_unusable_one_reported_not_acted_on(
    crd: apis.Api, world: worlds.KubeWorld, tmp_path: Path
) -> None:
    api = crd
    with live.namespace(api) as ns:
        live.deployment(api, ns, "detector", replicas=1)  # no kopilot annotations at all
        live.deployment(api, ns, "other", replicas=1)
        create(api, ns, model_service("detector", "detector", capacityPerReplica=10, minReplicas=3))
        create(api, ns, model_service("ghost", "missing", capacityPerReplica=10, minReplicas=3))
        create(api, ns, model_service("second", "detector", capacityPerReplica=5, minReplicas=4))
        world.settings = worlds.Settings(namespaces=frozenset({ns}))
        live.wait_for(
            "the ModelServices in the cache",
            lambda: (
                True
                if len([m for m in world.modelservices.items() if m.startswith(ns)]) == 3
                and world.workload_kind(f"{ns}/detector")
                else None
            ),
        )
        runner = running.Runner(
            world,
            [cycles.PolicySlot(policy=planning.ForecastPolicy())],
            governor.Governor(guardrails.Guardrails(dry_run=False)),
            audit.AuditLog(tmp_path / "audit.jsonl"),
            clock=clocks.WallClock(),
        )
        step = runner.step(time.time())
        assert step.error is None and step.report is not None, step
        assert live.read_deployment(api, ns, "detector")["spec"]["replicas"] == 3
        assert live.read_deployment(api, ns, "other")["spec"]["replicas"] == 1
        targets = {v.action.target for v in step.report.judged}
        assert targets == {f"service/{ns}/detector"}  # nothing for the unusable ones

        def condition(name: str, status: str) -> dict[str, Any] | None:
            c = ready_condition(api, ns, name)
            return c if c is not None and c["status"] == status else None

        ok = live.wait_for("detector Ready", lambda: condition("detector", "True"))
        assert ok["reason"] == "Managed" and "between 3 and 100 replicas" in ok["message"]
        ghost = live.wait_for("ghost not Ready", lambda: condition("ghost", "False"))
        assert ghost["reason"] == "TargetNotFound"
        assert f"Deployment {ns}/missing does not exist" in ghost["message"]
        second = live.wait_for("second not Ready", lambda: condition("second", "False"))
        assert second["reason"] == "TargetConflict" and ghost["observedGeneration"] == 1
        assert any(f"ModelService {ns}/ghost: TargetNotFound" in p for p in world.problems)


def test_a_crd_installed_after_kopilot_started_is_picked_up(
    api_client: k8s_client.ApiClient, crd: apis.Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = crd
    name = yaml.safe_load(CRD.read_text())["metadata"]["name"]
    api.call("DELETE", f"{CRDS}/{name}", "delete the CRD")

    def gone() -> bool | None:
        try:
            api.get(f"/apis/{modelservices.API_VERSION}", "discover")
        except failures.NotFoundError:
            return True
        return None

    live.wait_for("the CRD to be gone", gone)
    monkeypatch.setattr(worlds, "CRD_RECHECK_S", 0.0)
    w = worlds.KubeWorld.connect(api_client, clock=clocks.WallClock(), rng=random.Random(0))
    w.start()
    try:
        assert w.crd_served is False and w.wait_synced(60.0)
        with live.namespace(api) as ns:
            live.deployment(api, ns, "detector", replicas=1)
            install_crd(api)
            create(api, ns, model_service("detector", "detector", capacityPerReplica=10))
            w.settings = worlds.Settings(namespaces=frozenset({ns}))
            live.wait_for(
                "the ModelService's service in a snapshot",
                lambda: w.snapshot(time.time()).service(f"{ns}/detector"),
            )
            assert w.crd_served is True
    finally:
        w.stop()
        install_crd(api)
