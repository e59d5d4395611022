"""What kopilot makes of a ModelService the API server accepted: managed, or why not; and the
status it writes back only when that changes (no control plane needed)."""

from __future__ import annotations

from typing import Any

import pytest

from kopilot.kube import converting, modelservices
from kopilot.model import resources


def raw(name: str, target: str = "detector", **spec: Any) -> modelservices.ModelService:
    body: dict[str, Any] = {
        "targetRef": {"kind": "Deployment", "name": target},
        "capacityPerReplica": 10.0,
        **spec,
    }
    return {
        "metadata": {"name": name, "namespace": "ml", "generation": 3},
        "spec": body,  # type: ignore[typeddict-item]
    }


def workload(name: str = "detector") -> converting.WorkloadInfo:
    return converting.WorkloadInfo(
        kind="Deployment",
        namespace="ml",
        name=name,
        replicas=1,
        ready_replicas=1,
        request=resources.Resources(cpu_milli=100),
        annotated=None,
    )


WORKLOADS = {("Deployment", "ml/detector"): workload()}


def test_a_usable_spec_manages_its_target_with_its_settings() -> None:
    spec = modelservices.spec_of(raw("a", minReplicas=2, maxReplicas=5, coldStartSeconds=30))
    managing, verdicts = modelservices.resolve([spec], WORKLOADS)
    assert managing["ml/detector"].settings is not None
    assert managing["ml/detector"].settings.min_replicas == 2
    assert verdicts["ml/a"].usable and verdicts["ml/a"].reason == "Managed"


def test_a_missing_target_a_second_claimant_and_an_unreadable_spec_are_not_managed() -> None:
    specs = [
        modelservices.spec_of(raw("a")),
        modelservices.spec_of(raw("b")),
        modelservices.spec_of(raw("c", target="ghost")),
        modelservices.spec_of(raw("d", capacityPerReplica="fast")),
    ]
    managing, verdicts = modelservices.resolve(specs, WORKLOADS)
    assert list(managing) == ["ml/detector"] and managing["ml/detector"].name == "a"
    assert (verdicts["ml/b"].reason, verdicts["ml/c"].reason, verdicts["ml/d"].reason) == (
        "TargetConflict",
        "TargetNotFound",
        "InvalidSpec",
    )
    assert "ModelService ml/a already manages Deployment ml/detector" in verdicts["ml/b"].message
    assert "Deployment ml/ghost does not exist" in verdicts["ml/c"].message
    assert "spec.capacityPerReplica must be a finite number" in verdicts["ml/d"].message


def test_status_is_written_only_when_the_verdict_changes() -> None:
    spec = modelservices.spec_of(raw("c", target="ghost"))
    _, verdicts = modelservices.resolve([spec], WORKLOADS)
    body = modelservices.status_patch(spec, verdicts["ml/c"], 1000.0)
    assert body is not None
    [condition] = body["status"]["conditions"]
    assert condition["type"] == "Ready" and condition["status"] == "False"
    assert condition["reason"] == "TargetNotFound" and condition["observedGeneration"] == 3
    written = modelservices.spec_of({**raw("c", target="ghost"), "status": body["status"]})
    assert modelservices.status_patch(written, verdicts["ml/c"], 2000.0) is None


@pytest.mark.parametrize(
    "garbage",
    [
        {},
        {"spec": "fast"},
        {"spec": {"targetRef": "detector", "capacityPerReplica": 10}},
        {"spec": {"targetRef": {"kind": "Deployment", "name": 7}, "capacityPerReplica": 10}},
        {"metadata": {"generation": "x"}, "spec": {"capacityPerReplica": float("nan")}},
        {"status": {"conditions": ["Ready", None, {"type": "Ready"}]}},
        {"spec": {"targetRef": {"kind": "Deployment", "name": "d"}, "capacityPerReplica": True}},
    ],
)
def test_a_malformed_object_is_read_as_invalid_never_raised(garbage: dict[str, Any]) -> None:
    spec = modelservices.spec_of(garbage)  # type: ignore[arg-type]
    _, verdicts = modelservices.resolve([spec], WORKLOADS)
    [verdict] = verdicts.values()
    assert not verdict.usable and verdict.reason == "InvalidSpec"
