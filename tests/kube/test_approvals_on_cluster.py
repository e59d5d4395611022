"""Approvers in a cluster are who the API server says, and may approve what RBAC lets them.

On the real control plane (RBAC on): ServiceAccount tokens minted for the audience `kopilot`,
a Role granting `approve` on `decisions.kopilot.io` in one namespace, and kopilot's check
(TokenReview, then SubjectAccessReview) through `kopilot.kube.approving` and `kopilot approve`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s_client
from typer.testing import CliRunner

from kopilot.cli import app
from kopilot.governance import approvals, verdicts
from kopilot.kube import apis, approving, failures
from kopilot.model import actions
from tests.builders import scale
from tests.kube import live


@pytest.fixture(scope="module")
def team(api_client: k8s_client.ApiClient) -> Iterator[tuple[apis.Api, str, dict[str, str]]]:
    """A namespace with two ServiceAccounts: `approver` (bound to `approve` decisions there) and
    `bystander` (no binding); their tokens for the audience `kopilot` and one for the API server."""
    api = live.make_api(api_client)
    with live.namespace(api) as ns:
        live.service_accounts(api, ns, "approver", "bystander")
        rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}"
        api.post(
            f"{rbac}/roles",
            {
                "metadata": {"name": "kopilot-approver"},
                "rules": [
                    {"apiGroups": ["kopilot.io"], "resources": ["decisions"], "verbs": ["approve"]}
                ],
            },
            "create a role",
        )
        api.post(
            f"{rbac}/rolebindings",
            {
                "metadata": {"name": "kopilot-approver"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "kopilot-approver",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "approver", "namespace": ns}],
            },
            "bind the role",
        )
        tokens = {
            "approver": live.token(api, ns, "approver", approving.AUDIENCE),
            "bystander": live.token(api, ns, "bystander", approving.AUDIENCE),
            "approver-for-the-api-server": live.token(api, ns, "approver", None),
        }
        yield api, ns, tokens


def _request(tmp_path: Path, action: actions.Action) -> tuple[approvals.ApprovalQueue, str]:
    q = approvals.ApprovalQueue(tmp_path / "approvals.jsonl")
    now = time.time()
    v = verdicts.Verdict(
        action=action, outcome=verdicts.Outcome.PENDING_APPROVAL, reason="needs a person", time=now
    )
    return q, q.request(v, ttl_s=600)


def _wait_for_rbac(api: apis.Api, token: str, request: approvals.Request) -> approving.Check:
    """The RBAC authorizer's cache sees a new RoleBinding within moments: ask until it does."""
    return live.wait_for(
        "the role binding to take effect",
        lambda: ((c := approving.check(api, token, request)).allowed and c) or None,
        timeout=30,
    )


def test_rbac_decides_who_may_approve(
    team: tuple[apis.Api, str, dict[str, str]], tmp_path: Path
) -> None:
    api, ns, tokens = team
    q, rid = _request(tmp_path, scale(f"{ns}/detector", 3))
    request = q.pending(rid, time.time())
    assert request.namespace == ns
    allowed = _wait_for_rbac(api, tokens["approver"], request)
    assert allowed.approver == approvals.Approver(
        name=f"system:serviceaccount:{ns}:approver", via="kubernetes"
    )

    refused = approving.check(api, tokens["bystander"], request)
    assert refused.approver is None
    assert f"system:serviceaccount:{ns}:bystander may not approve" in refused.reason

    # the same approver, for a node-level decision: the Role reaches only its namespace
    q2, node_rid = _request(tmp_path / "nodes", actions.Cordon(node="gpu-1", reason="XID 79"))
    cluster_wide = approving.check(api, tokens["approver"], q2.pending(node_rid, time.time()))
    assert cluster_wide.approver is None and "(cluster-wide)" in cluster_wide.reason

    for bad in (tokens["approver-for-the-api-server"], tokens["approver"][:-4] + "AAAA"):
        forged = approving.check(api, bad, request)
        assert forged.approver is None and "not valid for the audience kopilot" in forged.reason


def test_kopilot_approve_with_a_token(
    team: tuple[apis.Api, str, dict[str, str]],
    kubeconfig: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api, ns, tokens = team
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    q, rid = _request(tmp_path, scale(f"{ns}/detector", 3))
    _wait_for_rbac(api, tokens["approver"], q.pending(rid, time.time()))
    files = {}
    for who, token in tokens.items():
        files[who] = tmp_path / f"{who}.token"
        files[who].write_text(token + "\n")
    runner = CliRunner(env={"COLUMNS": "500"})

    def approve(who: str, *more: str) -> Any:
        args = ["approve", rid, "--queue", str(q.path), "--token-file", str(files[who])]
        return runner.invoke(app, [*args, "--kubeconfig", str(kubeconfig), *more])

    refused = approve("bystander")
    assert refused.exit_code == 2 and "not allowed" in refused.output
    assert approvals.ApprovalQueue(q.path).requests(time.time())[rid].state == "pending"

    # kopilot's own credentials without the right to review tokens: a fault, said in one line
    weak = tmp_path / "bystander.kubeconfig"
    config = yaml.safe_load(kubeconfig.read_text())
    config["users"][0]["user"] = {"token": live.token(api, ns, "bystander", None)}
    weak.write_text(yaml.safe_dump(config))
    args = ["approve", rid, "--queue", str(q.path), "--token-file", str(files["approver"])]
    no_rights = runner.invoke(app, [*args, "--kubeconfig", str(weak)])
    assert no_rights.exit_code == 2 and "tokenreviews" in no_rights.output
    assert no_rights.exception is None or isinstance(no_rights.exception, SystemExit)

    ok = approve("approver", "--by", "INC-42")
    assert ok.exit_code == 0, ok.output
    r = approvals.ApprovalQueue(q.path).requests(time.time())[rid]
    assert (r.state, r.by, r.via, r.note) == (
        "approved",
        f"system:serviceaccount:{ns}:approver",
        "kubernetes",
        "INC-42",
    )


def test_a_review_kopilot_may_not_make_is_an_error(
    team: tuple[apis.Api, str, dict[str, str]], api_client: k8s_client.ApiClient, tmp_path: Path
) -> None:
    api, ns, tokens = team
    q, rid = _request(tmp_path, scale(f"{ns}/detector", 3))
    configuration = api_client.configuration
    weak = k8s_client.Configuration()
    weak.host = configuration.host
    weak.ssl_ca_cert = configuration.ssl_ca_cert
    weak.api_key = {"authorization": "Bearer " + live.token(api, ns, "bystander", None)}
    with (
        k8s_client.ApiClient(weak) as weak_client,
        pytest.raises(failures.RejectedError, match="tokenreviews"),
    ):
        approving.check(live.make_api(weak_client), tokens["approver"], q.pending(rid, time.time()))
