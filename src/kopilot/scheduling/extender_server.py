"""The extender's HTTP server: `POST /filter`, `/prioritize`, `/bind` (kube-scheduler's extender
API), `POST /forget` (kopilot: release a pod that ended) and `GET /healthz`.

A malformed body gets HTTP 400 with `{"Error": "<reason>"}`; any fault inside a handler gets 500
with the reason; the server keeps serving either way.

One asyncio event loop serves every connection (HTTP/1.1 keep-alive, bodies by Content-Length,
as kube-scheduler sends them) and answers requests one at a time, in arrival order. The work is
CPU-bound Python, so threads would only take turns on the GIL: serving in order costs less per
request (no header parsing by `email`, no thread switches) and a request waits only for those
that came before it.
"""

from __future__ import annotations

import asyncio
import http
import threading

import orjson

from kopilot.model import errors
from kopilot.scheduling import extender_types, extending

MAX_BODY = 64 * 1024 * 1024
MAX_HEAD = 64 * 1024
"""Longest request line + headers accepted."""


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


def _response(code: int, body: bytes, *, close: bool) -> bytes:
    head = (
        f"HTTP/1.1 {code} {http.HTTPStatus(code).phrase}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        + ("Connection: close\r\n" if close else "")
        + "\r\n"
    )
    return head.encode("latin-1") + body


def _error(message: str) -> bytes:
    return orjson.dumps({"Error": message})


class _Connection(asyncio.Protocol):
    """One client connection: requests are parsed from the bytes received and answered in
    order."""

    def __init__(self, extender: extending.Extender) -> None:
        self.extender = extender
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None and self._answer_one():
            pass

    def _answer_one(self) -> bool:
        """Answer the first request in the buffer if it is complete; False when more bytes are
        needed (or the connection was closed)."""
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEAD:
                self._reply(431, _error(f"request head over {MAX_HEAD} bytes"), close=True)
            return False
        lines = self.buffer[:end].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            self._reply(400, _error(f"bad request line {lines[0][:80]!r}"), close=True)
            return False
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                self._reply(400, _error(f"bad header line {line[:80]!r}"), close=True)
                return False
            headers[name.strip().lower()] = value.strip()
        try:
            length = int(headers.get("content-length") or 0)
        except ValueError:
            self._reply(400, _error("Content-Length is not an integer"), close=True)
            return False
        if length < 0 or length > MAX_BODY:
            self._reply(400, _error(f"body must be 0..{MAX_BODY} bytes"), close=True)
            return False
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._reply(411, _error("send the body with a Content-Length"), close=True)
            return False
        start = end + 4
        if len(self.buffer) < start + length:
            return False
        body = bytes(self.buffer[start : start + length])
        del self.buffer[: start + length]
        connection = headers.get("connection", "").lower()
        close = connection == "close" or (version == "HTTP/1.0" and connection != "keep-alive")
        code, payload = self._route(method, target, body)
        self._reply(code, payload, close=close)
        return not close

    def _route(self, method: str, target: str, body: bytes) -> tuple[int, bytes]:
        path = target.split("?", 1)[0].rstrip("/")
        if method == "GET":
            if path in ("/healthz", "/readyz"):
                return 200, b'{"status":"ok"}'
            return 404, _error(f"no such path {target}; POST /filter, /prioritize, /bind")
        if method != "POST":
            return 501, _error(f"unsupported method {method!r}; POST /filter, /prioritize, /bind")
        return answer(self.extender, path.rsplit("/", 1)[-1], body)

    def _reply(self, code: int, body: bytes, *, close: bool) -> None:
        if self.transport is None:
            return
        self.transport.write(_response(code, body, close=close))
        if close:
            self.transport.close()
            self.transport = None


class Server:
    """A running extender server; `close()` stops it."""

    def __init__(self, extender: extending.Extender, *, host: str = "127.0.0.1", port: int = 0):
        self.loop = asyncio.new_event_loop()
        self.server = self.loop.run_until_complete(
            self.loop.create_server(lambda: _Connection(extender), host, port)
        )
        self.thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server.sockets[0].getsockname()[1])

    def start(self) -> Server:
        """Serve in a background thread."""
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until `close()` (from another thread) or KeyboardInterrupt."""
        try:
            self.loop.run_forever()
        finally:
            self.server.close()

    def close(self) -> None:
        if self.thread is not None and self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)
        self.server.close()
        if not self.loop.is_running():
            self.loop.run_until_complete(self.server.wait_closed())
            self.loop.close()
