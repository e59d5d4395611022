"""The extender's HTTP server: `POST /filter`, `/prioritize`, `/bind` (kube-scheduler's extender
API), `POST /forget` (kopilot: release a pod that ended) and `GET /healthz`.

A malformed body gets HTTP 400 with `{"Error": "<reason>"}`; any fault inside a handler gets 500
with the reason; the server keeps serving either way. Threads serve requests concurrently; the
extender's state is guarded by its own lock.
"""

from __future__ import annotations

import threading
from http import server
from typing import Any

import orjson

from kopilot.model import errors
from kopilot.scheduling import extender_types, extending

MAX_BODY = 64 * 1024 * 1024


class _Handler(server.BaseHTTPRequestHandler):
    extender: extending.Extender
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once: no 40 ms delayed-ACK stall

    def log_message(self, format: str, *args: Any) -> None:  # quiet: no line per request
        return

    def _send(self, code: int, payload: object) -> None:
        self._send_bytes(code, orjson.dumps(payload))

    def _send_bytes(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/healthz", "/readyz"):
            self._send(200, {"status": "ok"})
        else:
            self._send(
                404, {"Error": f"no such path {self.path}; POST /filter, /prioritize, /bind"}
            )

    def do_POST(self) -> None:
        path = self.path.rstrip("/").rsplit("/", 1)[-1]
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            self._send(400, {"Error": "Content-Length is not an integer"})
            return
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            self._send(400, {"Error": f"body must be 0..{MAX_BODY} bytes"})
            return
        code, body = answer(self.extender, path, self.rfile.read(length))
        self._send_bytes(code, body)


def answer(ext: extending.Extender, verb: str, raw: bytes) -> tuple[int, bytes]:
    """The HTTP status and JSON body answering one POST of `raw` to `/<verb>`: everything the
    server does for a request except the socket (the load benchmark times this in-process)."""
    try:
        payload = _route(ext, verb, raw)
    except _NotFound:
        return 404, orjson.dumps({"Error": f"no such verb {verb!r}; use filter, prioritize, bind"})
    except extender_types.MalformedError as e:
        return 400, orjson.dumps({"Error": f"malformed {verb} body: {e}"})
    except errors.InvalidInputError as e:
        return 400, orjson.dumps({"Error": f"{verb}: {e}"})
    except Exception as e:  # a fault: report it, keep serving
        return 500, orjson.dumps({"Error": f"{verb}: internal error: {type(e).__name__}: {e}"})
    return 200, orjson.dumps(payload)


def _route(ext: extending.Extender, verb: str, raw: bytes) -> object:
    if verb == "filter":
        return orjson.Fragment(
            ext.filter_json(extender_types.decode(raw, extender_types.ExtenderArgs))
        )
    if verb == "prioritize":
        # Node objects were read in full by this pod's filter call just before: only their
        # names are needed now, unless some are new to the extender.
        args: extender_types.ExtenderArgs | extender_types.NamedArgs = extender_types.decode(
            raw, extender_types.NamedArgs
        )
        if args.with_objects and not ext.knows(args.names()):
            args = extender_types.decode(raw, extender_types.ExtenderArgs)
        return orjson.Fragment(ext.prioritize_json(args))
    if verb == "bind":
        return ext.bind(extender_types.decode(raw, extender_types.ExtenderBindingArgs))
    if verb == "forget":
        binding = extender_types.decode(raw, extender_types.ExtenderBindingArgs)
        released = ext.forget(f"{binding.pod_namespace}/{binding.pod_name}")
        return {"Error": "" if released else "pod was not bound by this extender"}
    raise _NotFound


class _NotFound(Exception):
    pass


class Server:
    """A running extender server; `close()` stops it."""

    def __init__(self, extender: extending.Extender, *, host: str = "127.0.0.1", port: int = 0):
        handler = type("Handler", (_Handler,), {"extender": extender})
        self.httpd = server.ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> Server:
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self.thread is not None:
            self.thread.join(timeout=5)
