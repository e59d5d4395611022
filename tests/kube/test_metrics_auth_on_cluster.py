"""kopilot's /metrics behind `--metrics-auth`, with the real API server (RBAC on) answering.

The chart's own `<release>-metrics-reader` ClusterRole (rendered by helm) is created and bound to
one ServiceAccount; the exporter serves on loopback with `kube.scraping.MetricsGuard` as its gate.
A token of the bound account gets the metrics, one of an unbound account 403, garbage 401; the
probes answer without a token.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client as k8s_client

from kopilot.kits import clocks
from kopilot.kube import apis, approving, controlplane, failures, scraping
from kopilot.metrics import exporter
from tests.kube import live
from tests.kube.test_helm_chart import CHART, KUBE_VERSION

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

RBAC = "/apis/rbac.authorization.k8s.io/v1"


def _reader_role(helm: Path, release: str) -> dict[str, Any]:
    argv = [str(helm), "template", release, str(CHART), "--namespace", "ops"]
    argv += ["--kube-version", KUBE_VERSION]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    (role,) = [
        d
        for d in yaml.safe_load_all(out)
        if d and d["kind"] == "ClusterRole" and d["metadata"]["name"].endswith("-metrics-reader")
    ]
    return dict(role)


@pytest.fixture(scope="module")
def scrapers(
    api_client: k8s_client.ApiClient, helm: Path
) -> Iterator[tuple[apis.Api, str, dict[str, str]]]:
    """ServiceAccounts `prometheus` (bound to the chart's metrics-reader) and `bystander`; their
    tokens for the API server, and one of `prometheus` minted for another audience."""
    api = live.make_api(api_client)
    role = _reader_role(helm, f"m{uuid.uuid4().hex[:8]}")
    name = role["metadata"]["name"]
    with live.namespace(api) as ns:
        live.service_accounts(api, ns, "prometheus", "bystander")
        api.post(f"{RBAC}/clusterroles", role, "create the metrics-reader role")
        try:
            api.post(
                f"{RBAC}/clusterrolebindings",
                {
                    "metadata": {"name": name},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": name,
                    },
                    "subjects": [{"kind": "ServiceAccount", "name": "prometheus", "namespace": ns}],
                },
                "bind the metrics-reader role",
            )
            reader: approving.UserInfo = {
                "username": f"system:serviceaccount:{ns}:prometheus",
                "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}"],
            }
            live.wait_for(  # the RBAC authorizer sees a new binding within moments
                "the metrics-reader binding to take effect",
                lambda: (
                    approving.authorize(api, reader, {"path": "/metrics", "verb": "get"})[0] or None
                ),
                timeout=30,
            )
            yield (
                api,
                ns,
                {
                    "prometheus": live.token(api, ns, "prometheus"),
                    "bystander": live.token(api, ns, "bystander"),
                    "prometheus-for-kopilot": live.token(api, ns, "prometheus", approving.AUDIENCE),
                },
            )
        finally:
            for kind in ("clusterrolebindings", "clusterroles"):
                with contextlib.suppress(failures.KubeError):
                    api.call("DELETE", f"{RBAC}/{kind}/{name}", "delete")


@pytest.fixture
def served(
    scrapers: tuple[apis.Api, str, dict[str, str]],
) -> Iterator[tuple[scraping.MetricsGuard, str, dict[str, str]]]:
    api, _, tokens = scrapers
    clock = clocks.WallClock()
    ex = exporter.Exporter(clock)
    ex.observe_step(leader=True, duration_s=0.1, error=False)
    ex.set_ready(True)
    guard = scraping.MetricsGuard(api, clock)
    server = ex.serve("127.0.0.1", 0, gate=guard)
    try:
        yield guard, server.url, tokens
    finally:
        server.close()


def _get(url: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.get(url, headers=headers, timeout=30)


def test_a_token_bound_to_the_metrics_reader_role_gets_the_metrics(
    served: tuple[scraping.MetricsGuard, str, dict[str, str]],
) -> None:
    guard, url, tokens = served
    got = _get(f"{url}/metrics", tokens["prometheus"])
    assert got.status_code == 200, got.text
    assert 'kopilot_cycles_total{result="ok"} 1.0' in got.text
    assert _get(f"{url}/metrics", tokens["prometheus"]).status_code == 200
    assert guard.reviews == 1  # the second scrape was answered from the cache


def test_a_valid_token_without_the_grant_is_forbidden(
    served: tuple[scraping.MetricsGuard, str, dict[str, str]],
) -> None:
    _, url, tokens = served
    got = _get(f"{url}/metrics", tokens["bystander"])
    assert got.status_code == 403
    assert ":bystander may not get /metrics" in got.text
    assert "kopilot_cycles_total" not in got.text


@pytest.mark.parametrize("token", [None, "garbage", "prometheus-forged", "prometheus-for-kopilot"])
def test_no_token_or_a_bad_one_is_unauthenticated(
    served: tuple[scraping.MetricsGuard, str, dict[str, str]], token: str | None
) -> None:
    _, url, tokens = served
    if token == "prometheus-forged":
        sent: str | None = tokens["prometheus"][:-4] + "AAAA"
    elif token == "prometheus-for-kopilot":
        sent = tokens[token]  # not valid for the API server's own audience
    else:
        sent = token
    got = _get(f"{url}/metrics", sent)
    assert got.status_code == 401
    assert "kopilot_cycles_total" not in got.text


def test_the_probes_need_no_token(
    served: tuple[scraping.MetricsGuard, str, dict[str, str]],
) -> None:
    guard, url, _ = served
    assert _get(f"{url}/healthz").status_code == 200
    assert _get(f"{url}/readyz").status_code == 200
    assert guard.reviews == 0


def test_kopilot_run_metrics_auth_binds_loopback_and_asks_the_api_server(
    scrapers: tuple[apis.Api, str, dict[str, str]],
    control_plane: controlplane.ControlPlane,
    tmp_path: Path,
) -> None:
    _, ns, tokens = scrapers
    argv = [sys.executable, "-m", "kopilot.cli", "run", "--metrics-auth", "--metrics-port", "0"]
    argv += ["--kubeconfig", str(control_plane.kubeconfig), "--no-leader-elect"]
    argv += ["--interval", "5", "--namespace", ns, "--audit-log", str(tmp_path / "audit.jsonl")]
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200", "KUBERNETES_SERVICE_HOST": ""},
    )
    try:
        assert proc.stdout is not None
        line = next((x for x in proc.stdout if x.startswith("metrics: ")), "")
        assert "(bearer token + RBAC)" in line, line
        url = line.split()[1].removesuffix("/metrics")
        assert url.startswith("http://127.0.0.1:")  # no --metrics-host: loopback
        assert _get(f"{url}/healthz").status_code == 200
        assert _get(f"{url}/metrics").status_code == 401
        assert _get(f"{url}/metrics", tokens["bystander"]).status_code == 403
        allowed = _get(f"{url}/metrics", tokens["prometheus"])
        assert allowed.status_code == 200 and "kopilot_leader" in allowed.text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
