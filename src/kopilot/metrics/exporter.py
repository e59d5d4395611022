"""kopilot's own Prometheus metrics and health endpoints (`kopilot run --metrics-port`).

| path | what |
|---|---|
| `/metrics` | `kopilot_cycles_total{result}`, `kopilot_actions_total{kind,outcome}`, `kopilot_cycle_duration_seconds`, `kopilot_leader`, `kopilot_last_cycle_timestamp_seconds`, `kopilot_world_problems` |
| `/healthz` | 200 while the loop has stepped within `stale_after_s` (leader or not), else 503 |
| `/readyz` | 200 once the loop is ready (its caches synced), else 503 |

Every metric lives in the exporter's own registry (no global state); the server is a small
threaded HTTP server that keeps serving whatever a client sends. With a `gate`
(`kits.access.Gate`; `kopilot run --metrics-auth` passes `kube.scraping.MetricsGuard`) a request
to /metrics must pass it: 401 without or with a bad bearer token, 403 without the RBAC grant, 500
when the API server could not authorize it. /healthz and /readyz stay open: the kubelet probes them
without a token, and they say nothing but up or not.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from http import server

import prometheus_client

from kopilot.kits import access, clocks, httpserving

OUTCOMES = ("approved", "dry-run", "refused", "pending-approval", "failed")


class Exporter:
    """kopilot's metrics and health state; `serve` exposes them over HTTP."""

    def __init__(self, clock: clocks.Clock, *, stale_after_s: float = 300.0) -> None:
        self._clock = clock
        self.stale_after_s = stale_after_s
        self.registry = prometheus_client.CollectorRegistry()
        r = self.registry
        self.cycles = prometheus_client.Counter(
            "kopilot_cycles", "Loop steps, by result (ok, error, follower).", ["result"], registry=r
        )
        self.actions = prometheus_client.Counter(
            "kopilot_actions",
            "Actions judged by the governor, by kind and outcome (failed = approved but the "
            "cluster refused it).",
            ["kind", "outcome"],
            registry=r,
        )
        self.duration = prometheus_client.Histogram(
            "kopilot_cycle_duration_seconds",
            "Time one loop step took (snapshot, policies, governor, apply).",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=r,
        )
        self.leader = prometheus_client.Gauge(
            "kopilot_leader", "1 while this instance holds the leader lease.", registry=r
        )
        self.last_cycle = prometheus_client.Gauge(
            "kopilot_last_cycle_timestamp_seconds",
            "Unix time of the last loop step.",
            registry=r,
        )
        self.problems = prometheus_client.Gauge(
            "kopilot_world_problems",
            "Objects the last snapshot left out (bad annotations, failed demand queries).",
            registry=r,
        )
        self._last_step: float | None = None
        self._ready = False
        self._lock = threading.Lock()

    # -- recording --------------------------------------------------------------------------
    def observe_step(
        self,
        *,
        leader: bool,
        duration_s: float,
        error: bool,
        judged: Iterable[tuple[str, str]] = (),
        failed: Iterable[str] = (),
        problems: int = 0,
    ) -> None:
        """Record one loop step: `judged` as (kind, outcome) pairs, `failed` as kinds."""
        result = "error" if error else ("ok" if leader else "follower")
        for kind, outcome in judged:
            self.actions.labels(kind=kind, outcome=outcome).inc()
        for kind in failed:
            self.actions.labels(kind=kind, outcome="failed").inc()
        self.problems.set(problems)
        self.duration.observe(max(0.0, duration_s))
        self.cycles.labels(result=result).inc()
        self.leader.set(1 if leader else 0)  # last: a scrape that sees it sees the step's counts
        now = self._clock.now()
        self.last_cycle.set(now)
        with self._lock:
            self._last_step = now

    def set_ready(self, ready: bool) -> None:
        with self._lock:
            self._ready = ready

    # -- health -----------------------------------------------------------------------------
    def healthy(self) -> tuple[bool, str]:
        with self._lock:
            last = self._last_step
        if last is None:
            return True, "starting"
        age = self._clock.now() - last
        if age > self.stale_after_s:
            return False, f"no loop step for {age:.0f} s (limit {self.stale_after_s:.0f} s)"
        return True, f"last step {age:.0f} s ago"

    def ready(self) -> tuple[bool, str]:
        with self._lock:
            return (True, "ready") if self._ready else (False, "caches not synced yet")

    def render(self) -> bytes:
        return bytes(prometheus_client.generate_latest(self.registry))

    # -- serving ----------------------------------------------------------------------------
    def serve(self, host: str, port: int, *, gate: access.Gate | None = None) -> MetricsServer:
        """Serve /metrics, /healthz and /readyz on host:port (port 0: any free port); /metrics
        only to requests `gate` allows, when there is one."""
        return MetricsServer(self, host, port, gate=gate)


class MetricsServer(httpserving.Background):
    """A threaded HTTP server for one Exporter; `close()` stops it."""

    def __init__(
        self, exporter: Exporter, host: str, port: int, *, gate: access.Gate | None = None
    ) -> None:
        handler = _handler_for(exporter, gate)
        super().__init__(
            server.ThreadingHTTPServer((host, port), handler), host, name="kopilot-metrics"
        )


def _handler_for(
    exporter: Exporter, gate: access.Gate | None
) -> type[server.BaseHTTPRequestHandler]:
    class Handler(httpserving.Handler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                if gate is not None:
                    answer = gate(self.headers.get("Authorization"))
                    if answer.verdict != "allowed":
                        self._refuse(answer)
                        return
                self._send(200, exporter.render(), prometheus_client.CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/livez"):
                ok, why = exporter.healthy()
                self._send(200 if ok else 503, f"{why}\n".encode(), "text/plain")
            elif path == "/readyz":
                ok, why = exporter.ready()
                self._send(200 if ok else 503, f"{why}\n".encode(), "text/plain")
            else:
                self._send(404, b"not found: try /metrics, /healthz or /readyz\n", "text/plain")

        def _refuse(self, answer: access.Access) -> None:
            extra = {"WWW-Authenticate": 'Bearer realm="kopilot"'} if answer.status == 401 else {}
            self._send(answer.status, f"{answer.reason}\n".encode(), "text/plain", extra)

    return Handler
