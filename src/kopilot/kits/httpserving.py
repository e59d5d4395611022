"""A small threaded HTTP server on a background thread, and a handler that answers in one call.

The replay exporter (`sim.replayserving`) and kopilot's own metrics endpoint (`metrics.exporter`)
both serve a few plain paths from `http.server`; they sit side by side in the layers and may not
import each other, so what they share lives here, below both.
"""

from __future__ import annotations

import threading
from http import server
from typing import Any


class Background:
    """Serves `httpd` from a daemon thread named `name` until `close()`."""

    def __init__(self, httpd: server.ThreadingHTTPServer, host: str, *, name: str) -> None:
        self._httpd = httpd
        self._httpd.daemon_threads = True
        self.host = host
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=name, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


class Handler(server.BaseHTTPRequestHandler):
    """A request handler with `_send` (status, body, type, extra headers) and no access log."""

    def _send(
        self,
        code: int,
        body: bytes,
        content_type: str = "text/plain",
        extra: dict[str, str] | None = None,
    ) -> None:
        self.send_response(code)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return  # no access log on stderr


__all__ = ["Background", "Handler"]
