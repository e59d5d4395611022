from __future__ import annotations

import pytest

from kopilot.metrics import workloads
from kopilot.model import errors


def test_kube_state_metrics_label_names() -> None:
    assert workloads.label_key("app.kubernetes.io/name") == "label_app_kubernetes_io_name"


@pytest.mark.parametrize(
    ("kind", "name", "pod", "expected"),
    [
        ("ReplicaSet", "web-5d8f7c9b6", "web-5d8f7c9b6-abcde", "web"),
        ("StatefulSet", "db", "db-0", "db"),
        ("<none>", "<none>", "calc", "calc"),
        ("", "", "calc", "calc"),
    ],
)
def test_workload_of_a_pod(kind: str, name: str, pod: str, expected: str) -> None:
    assert workloads.workload_of(kind, name, pod) == expected


def test_selector_terms_and_matching() -> None:
    terms = workloads.parse_selector("app=web, tier!=cache,gpu")
    assert terms == [("app", "=", "web"), ("tier", "!=", "cache"), ("gpu", "exists", "")]
    assert workloads.matches({"app": "web", "gpu": "1"}, terms)
    assert not workloads.matches({"app": "web", "tier": "cache", "gpu": "1"}, terms)
    assert not workloads.matches({"app": "web"}, terms)
    with pytest.raises(errors.InvalidInputError, match="key=value"):
        workloads.parse_selector("app in (a,b)")
