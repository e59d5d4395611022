"""kopilot's own /metrics, /healthz and /readyz, scraped over HTTP on loopback."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kopilot.kits import clocks
from kopilot.metrics import exporter

pytestmark = pytest.mark.integration


@pytest.fixture
def served() -> Iterator[tuple[exporter.Exporter, clocks.VirtualClock, str]]:
    clock = clocks.VirtualClock(1000.0)
    ex = exporter.Exporter(clock, stale_after_s=60.0)
    server = ex.serve("127.0.0.1", 0)
    try:
        yield ex, clock, server.url
    finally:
        server.close()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_count_cycles_actions_and_leadership(
    served: tuple[exporter.Exporter, clocks.VirtualClock, str],
) -> None:
    ex, _, url = served
    ex.observe_step(
        leader=True,
        duration_s=0.3,
        error=False,
        judged=[("Scale", "approved"), ("Scale", "approved"), ("Cordon", "refused")],
        failed=["Scale"],
        problems=2,
    )
    ex.observe_step(leader=False, duration_s=0.01, error=False)
    got = samples(httpx.get(f"{url}/metrics").text)
    assert got[("kopilot_cycles_total", (("result", "ok"),))] == 1
    assert got[("kopilot_cycles_total", (("result", "follower"),))] == 1
    assert got[("kopilot_actions_total", (("kind", "Scale"), ("outcome", "approved")))] == 2
    assert got[("kopilot_actions_total", (("kind", "Cordon"), ("outcome", "refused")))] == 1
    assert got[("kopilot_actions_total", (("kind", "Scale"), ("outcome", "failed")))] == 1
    assert got[("kopilot_cycle_duration_seconds_count", ())] == 2
    assert got[("kopilot_leader", ())] == 0  # the last step was a follower's
    assert got[("kopilot_world_problems", ())] == 0


def test_health_goes_stale_and_readiness_follows_the_caches(
    served: tuple[exporter.Exporter, clocks.VirtualClock, str],
) -> None:
    ex, clock, url = served
    assert httpx.get(f"{url}/readyz").status_code == 503
    ex.set_ready(True)
    assert httpx.get(f"{url}/readyz").status_code == 200
    assert httpx.get(f"{url}/healthz").status_code == 200  # starting
    ex.observe_step(leader=True, duration_s=0.1, error=False)
    clock.sleep(30)
    assert httpx.get(f"{url}/healthz").status_code == 200
    clock.sleep(31)
    stale = httpx.get(f"{url}/healthz")
    assert stale.status_code == 503
    assert "no loop step for 61 s" in stale.text


def test_garbage_requests_get_answers_and_the_server_keeps_serving(
    served: tuple[exporter.Exporter, clocks.VirtualClock, str],
) -> None:
    _, _, url = served
    assert httpx.get(f"{url}/nope").status_code == 404
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"\x00\x01garbage\r\n\r\n")
        sock.recv(1024)
    assert httpx.get(f"{url}/metrics").status_code == 200
