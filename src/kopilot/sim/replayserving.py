"""The replay exporter over HTTP: `/metrics` for Prometheus, `/healthz`, and `/faults`.

| path | what |
|---|---|
| `GET /metrics` | every family of the replay at the trace time now (text exposition format) |
| `GET /healthz` | 200 and the trace time |
| `GET /faults` | the faults injected so far, each with its status at the trace time now |
| `POST /faults` | inject one fault (JSON, the schema of sim/injections.py); 201 with the fault, 400 with one line saying what is wrong, 413 over `MAX_BODY` bytes |

Trace time is `start_s + (clock.now() - started) x speed`: the clock is injected, so a test drives
it by hand. Every request holds one lock: a scrape sees one consistent step. With a `source` (the
live cluster), a scrape at least `refresh_s` after the last reading reads the cluster again; a
reading that fails keeps the cluster as it was and `/healthz` says why.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterator
from http import server
from typing import Any

import prometheus_client
from prometheus_client import core, registry, utils

from kopilot.kits import clocks
from kopilot.model import errors
from kopilot.sim import clusterfiles, exporters, injections, replaying

MAX_BODY = 16 * 1024


class Exporter:
    """A Replay on a clock: what `/metrics` and `/faults` answer."""

    def __init__(
        self,
        replay: replaying.Replay,
        clock: clocks.Clock,
        *,
        source: Callable[[], clusterfiles.ClusterSpec] | None = None,
        refresh_s: float = 60.0,
    ) -> None:
        self.replay = replay
        self._clock = clock
        self._started = clock.now()
        self._lock = threading.Lock()
        self._source = source
        self._refresh_s = refresh_s
        self._refreshed = self._started
        self.problem: str | None = None
        """Why the last reading of the cluster failed, if it did."""
        self.registry = prometheus_client.CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))

    def trace_time(self) -> float:
        s = self.replay.settings
        return s.start_s + (self._clock.now() - self._started) * s.speed

    def families(self) -> tuple[exporters.Family, ...]:
        with self._lock:
            self._refresh()
            self.replay.advance_to(self.trace_time())
            return self.replay.families()

    def _refresh(self) -> None:
        now = self._clock.now()
        if self._source is None or now - self._refreshed < self._refresh_s:
            return
        self._refreshed = now
        try:
            self.replay.update_cluster(self._source())
            self.problem = None
        except errors.KopilotError as e:
            self.problem = f"cluster not refreshed, serving the last one read: {e}"

    def health(self) -> str:
        with self._lock:
            problem = self.problem
        return f"ok: trace time {self.trace_time():.0f} s" + (f"; {problem}" if problem else "")

    def render(self) -> bytes:
        return bytes(prometheus_client.generate_latest(self.registry))

    def faults(self) -> dict[str, object]:
        with self._lock:
            now = self.replay.now_s
            return {"trace_time_s": now, "faults": [f.describe(now) for f in self.replay.faults]}

    def inject(self, body: object) -> dict[str, object]:
        """Inject one fault from a parsed JSON body; InvalidInputError says what is wrong."""
        if not isinstance(body, dict):
            raise errors.InvalidInputError("the body must be a JSON object (one fault)")
        request = injections.request(body, source="fault")
        with self._lock:
            self.replay.advance_to(self.trace_time())
            fault = self.replay.inject(request)
            return fault.describe(self.replay.now_s)

    def serve(self, host: str, port: int) -> Server:
        """Serve on host:port (port 0: any free port) until `close()`."""
        return Server(self, host, port)


class _Collector(registry.Collector):
    def __init__(self, exporter: Exporter) -> None:
        self._exporter = exporter

    def collect(self) -> Iterator[core.Metric]:
        for f in self._exporter.families():
            if f.kind == "histogram":
                h = core.HistogramMetricFamily(
                    f.name, f.help, labels=_label_names(f.histograms[0].labels, f)
                )
                for x in f.histograms:
                    h.add_metric(
                        list(x.labels.values()),
                        [(_bound(b), c) for b, c in x.buckets],
                        x.total,
                    )
                yield h
                continue
            metric: core.Metric = core.Metric(
                f.name.removesuffix("_total") if f.kind == "counter" else f.name, f.help, f.kind
            )
            suffix = "_total" if f.kind == "counter" else ""
            for s in f.samples:
                metric.add_sample(metric.name + suffix, dict(s.labels), s.value)
            yield metric


def _bound(b: float) -> str:
    """An `le` label as Prometheus writes it (`0.25`, `1.0`, `+Inf`)."""
    return str(utils.floatToGoString(b))  # type: ignore[no-untyped-call]


def _label_names(labels: exporters.Labels, f: exporters.Family) -> list[str]:
    names = list(labels)
    if any(list(x.labels) != names for x in f.histograms):
        raise ValueError(f"{f.name}: every histogram needs the same label names")
    return names


class _HTTPServer(server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-answer (a scrape timing out) is routine, not a fault."""

        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class Server:
    """A threaded HTTP server for one Exporter; `close()` stops it."""

    def __init__(self, exporter: Exporter, host: str, port: int) -> None:
        self._httpd = _HTTPServer((host, port), _handler_for(exporter))
        self._httpd.daemon_threads = True
        self.host = host
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="kopilot-replay", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


def _handler_for(exporter: Exporter) -> type[server.BaseHTTPRequestHandler]:
    class Handler(server.BaseHTTPRequestHandler):
        timeout = 10.0
        """Seconds a client may take to send its request (no connection held open for ever)."""

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, exporter.render(), prometheus_client.CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._send(200, f"{exporter.health()}\n".encode())
            elif path == "/faults":
                self._json(200, exporter.faults())
            else:
                self._send(404, b"not found: try /metrics, /healthz or /faults\n")

        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] != "/faults":
                self._send(404, b"not found: POST a fault to /faults\n")
                return
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self._error(411, "send a Content-Length header with the JSON body")
                return
            if length > MAX_BODY:
                self.close_connection = True
                self._error(413, f"the body is {length} bytes; a fault is at most {MAX_BODY}")
                return
            raw = self.rfile.read(max(0, length))
            try:
                body = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                self._error(400, f"the body is not JSON ({e})")
                return
            try:
                self._json(201, exporter.inject(body))
            except errors.InvalidInputError as e:
                self._error(400, str(e))

        def _error(self, code: int, message: str) -> None:
            self._json(code, {"error": message})

        def _json(self, code: int, value: object) -> None:
            self._send(code, json.dumps(value).encode() + b"\n", "application/json")

        def _send(self, code: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # no access log on stderr

    return Handler


__all__ = ["MAX_BODY", "Exporter", "Server"]
