"""/metrics behind a gate (`kopilot run --metrics-auth`): the exporter asks an injected check and
answers 401/403/500 or the metrics; /healthz and /readyz stay open to the kubelet's probes.

A working fake gate stands in for the TokenReview + SubjectAccessReview (tests/kube has the real
ones); the server is real, on loopback.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from kopilot.kits import access, clocks
from kopilot.metrics import exporter

TOKENS: dict[str, access.Access] = {
    "reader": access.Access(verdict="allowed", reason="reader may get /metrics"),
    "bystander": access.Access(verdict="forbidden", reason="bystander may not get /metrics"),
    "broken": access.Access(verdict="failed", reason="authorization for user broken failed"),
    "unchecked": access.Access(verdict="unverified", reason="authentication failed"),
}


class FakeGate:
    """Answers by bearer token from TOKENS; any other token is not valid."""

    def __init__(self) -> None:
        self.headers: list[str | None] = []

    def __call__(self, header: str | None) -> access.Access:
        self.headers.append(header)
        token = access.bearer(header)
        if token is None:
            return access.Access(verdict="unauthenticated", reason="no bearer token")
        return TOKENS.get(token) or access.Access(verdict="unauthenticated", reason="bad token")


@pytest.fixture
def gated() -> Iterator[tuple[exporter.Exporter, FakeGate, str]]:
    ex = exporter.Exporter(clocks.VirtualClock(1000.0), stale_after_s=60.0)
    gate = FakeGate()
    server = ex.serve("127.0.0.1", 0, gate=gate)
    try:
        yield ex, gate, server.url
    finally:
        server.close()


def _get(url: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.get(url, headers=headers)


@pytest.mark.parametrize(
    ("token", "status"),
    [
        (None, 401),
        ("garbage", 401),
        ("unchecked", 401),
        ("bystander", 403),
        ("broken", 500),
    ],
)
def test_metrics_are_refused_without_a_token_the_gate_allows(
    gated: tuple[exporter.Exporter, FakeGate, str], token: str | None, status: int
) -> None:
    ex, _, url = gated
    ex.observe_step(leader=True, duration_s=0.1, error=False)
    got = _get(f"{url}/metrics", token)
    assert got.status_code == status
    assert "kopilot_cycles_total" not in got.text  # nothing leaks with a refusal
    assert (got.headers.get("WWW-Authenticate") == 'Bearer realm="kopilot"') == (status == 401)


def test_metrics_are_served_to_an_allowed_token(
    gated: tuple[exporter.Exporter, FakeGate, str],
) -> None:
    ex, gate, url = gated
    ex.observe_step(leader=True, duration_s=0.1, error=False)
    got = _get(f"{url}/metrics?x=1", "reader")
    assert got.status_code == 200
    assert 'kopilot_cycles_total{result="ok"} 1.0' in got.text
    assert gate.headers == ["Bearer reader"]


def test_probes_stay_open_and_never_ask_the_gate(
    gated: tuple[exporter.Exporter, FakeGate, str],
) -> None:
    ex, gate, url = gated
    ex.set_ready(True)
    assert _get(f"{url}/healthz").status_code == 200
    assert _get(f"{url}/livez").status_code == 200
    assert _get(f"{url}/readyz").status_code == 200
    assert _get(f"{url}/readyz", "garbage").status_code == 200
    assert gate.headers == []


def test_without_a_gate_metrics_stay_open() -> None:
    ex = exporter.Exporter(clocks.VirtualClock(0.0))
    server = ex.serve("127.0.0.1", 0)
    try:
        assert _get(f"{server.url}/metrics").status_code == 200
    finally:
        server.close()


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer   ", None),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
    ],
)
def test_bearer_tokens_are_read_from_the_authorization_header(
    header: str | None, token: str | None
) -> None:
    assert access.bearer(header) == token
