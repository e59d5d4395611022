"""The extender's HTTP server: `POST /filter`, `/prioritize`, `/bind` (kube-scheduler's extender
API), `POST /forget` (kopilot: release a pod that ended) and `GET /healthz`.

A malformed body gets HTTP 400 with `{"Error": "<reason>"}`; a body over `MAX_BODY`, or one
that would take the bodies held at once past `MAX_BODIES`, gets 413; any fault inside a handler
gets 500 with the reason; the server keeps serving either way. Limits: docs/extender.md.

uvicorn serves HTTP/1.1 (keep-alive, its httptools parser; a request that is not HTTP gets its
400 and the connection is closed). The event loop reads requests and answers `/healthz` and
the small requests, one at a time in arrival order; a large body goes to one worker thread
(`App`), which keeps the loop (and the probe) free while it is answered. The work is CPU-bound
Python, so more threads would only take turns on the GIL.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from concurrent import futures
from typing import Any

import orjson
import uvicorn

from kopilot.model import errors
from kopilot.scheduling import extender_types, extending

MAX_BODY = 64 * 1024 * 1024
"""One request's body: 5,000 full v1.Node objects (the most one cluster has) with their image
lists fit."""
MAX_BODIES = 256 * 1024 * 1024
"""Bytes of request bodies held at once, over every connection: the event loop reads bodies of
many connections in turns, so without this a few clients uploading at once could hold
connections x MAX_BODY. A request that would go past it gets 413 (send it again later)."""


def answer(ext: extending.Extender, verb: str, raw: bytes) -> tuple[int, bytes]:
    """The HTTP status and JSON body answering one POST of `raw` to `/<verb>`: everything the
    server does for a request except the socket (the load benchmark times this in-process)."""
    try:
        payload = _route(ext, verb, raw)
    except _NotFound:
        return 404, _error(f"no such verb {verb!r}; use filter, prioritize, bind")
    except extender_types.MalformedError as e:
        return 400, _error(f"malformed {verb} body: {e}")
    except errors.InvalidInputError as e:
        return 400, _error(f"{verb}: {e}")
    except Exception as e:  # a fault: report it, keep serving
        return 500, _error(f"{verb}: internal error: {type(e).__name__}: {e}")
    return 200, orjson.dumps(payload)


def _error(message: str) -> bytes:
    return orjson.dumps({"Error": message})


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


_JSON = (b"content-type", b"application/json")


INLINE_BODY = 1 << 20
"""Bodies up to this size (2,000 v1.Nodes) are answered in the event loop when nothing is
queued for the worker thread; larger ones by the worker. Handing a 1,000-node request (0.5 MB)
to the worker cost ~3 ms more server CPU per filter+prioritize pair (15 vs 12.6 ms,
bench/extender_load.py), so only the bodies that take long to decode go there."""


class App:
    """The extender as a bare ASGI app: no framework between uvicorn's HTTP parser and
    `answer`. The event loop reads requests and answers `GET /healthz` and the small verbs
    itself; a body over INLINE_BODY (a 57 MiB body of 12,000 v1.Nodes takes seconds to
    decode), and every request after it until the queue is empty, is answered by one worker
    thread, one at a time in arrival order, so a long request never keeps the probe waiting.
    (A client that half-closes its side after a large request loses the answer: uvicorn closes
    the connection at EOF. kube-scheduler does not half-close.)"""

    def __init__(
        self,
        extender: extending.Extender,
        *,
        max_body: int = MAX_BODY,
        max_bodies: int = MAX_BODIES,
    ) -> None:
        self.extender = extender
        self.max_body = max_body
        self.max_bodies = max_bodies
        self.held = 0
        """Bytes of request bodies being read right now, over every connection."""
        self.worker = futures.ThreadPoolExecutor(1, thread_name_prefix="extender")
        self.queued = 0
        """Requests handed to the worker and not answered yet: while there are any, every
        request goes the same way (in order, and the loop never waits for the lock)."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = bytearray()
        refused: bytes | None = None
        drained = 0
        try:
            while True:
                message = await receive()
                chunk = message.get("body", b"")
                if refused is not None:
                    drained += len(chunk)  # read and dropped, so the client hears the 413
                elif len(body) + len(chunk) > self.max_body:
                    refused = _error(f"body over {self.max_body} bytes")
                elif self.held + len(chunk) > self.max_bodies:
                    refused = _error(
                        f"the extender is reading {self.held} bytes of other requests' bodies "
                        "(its limit); send this one again in a moment"
                    )
                else:
                    body += chunk
                    self.held += len(chunk)
                if refused is not None and body:
                    self.held -= len(body)
                    body = bytearray()
                if not message.get("more_body", False) or drained > self.max_body:
                    break
        finally:
            self.held -= len(body)
        if refused is not None:
            code, payload = 413, refused
        else:
            code, payload = await self._answer(scope["method"], scope["path"], bytes(body))
        del body
        headers = [_JSON, (b"content-length", str(len(payload)).encode())]
        if drained > self.max_body:  # the rest of the body is not read: the connection ends
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": code, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def _answer(self, method: str, target: str, body: bytes) -> tuple[int, bytes]:
        if method != "POST" or (len(body) <= INLINE_BODY and not self.queued):
            return self._route(method, target, body)  # nothing queued: in order, no hand-over
        self.queued += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.worker, self._route, method, target, body)
        finally:
            self.queued -= 1

    def _route(self, method: str, target: str, body: bytes) -> tuple[int, bytes]:
        path = target.rstrip("/")
        if method == "GET":
            if path in ("/healthz", "/readyz"):
                return 200, orjson.dumps({"status": "ok", **self.extender.status()})
            return 404, _error(f"no such path {target}; POST /filter, /prioritize, /bind")
        if method != "POST":  # the client's mistake: 405, not a server error
            return 405, _error(f"unsupported method {method!r}; POST /filter, /prioritize, /bind")
        return answer(self.extender, path.rsplit("/", 1)[-1], body)


class Server:
    """A running extender server: uvicorn with its httptools parser (and uvloop where
    installed) on one event loop; `close()` stops it."""

    def __init__(self, extender: extending.Extender, *, host: str = "127.0.0.1", port: int = 0):
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        config = uvicorn.Config(
            App(extender),
            http="httptools",
            loop="auto",
            lifespan="off",
            access_log=False,
            log_level="warning",
            timeout_keep_alive=300,  # kube-scheduler keeps its connection open between pods
        )
        self.server = uvicorn.Server(config)
        self.thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def start(self) -> Server:
        """Serve in a background thread (returns once it is listening)."""
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()
        while not self.server.started and self.thread.is_alive():
            time.sleep(0.01)
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until `close()` (from another thread) or SIGINT/SIGTERM."""
        self.server.run(sockets=[self.sock])

    def close(self) -> None:
        self.server.should_exit = True
        if self.thread is not None and self.thread.is_alive():
            self.thread.join(timeout=5)
        self.sock.close()
        app = self.server.config.app
        if isinstance(app, App):
            app.worker.shutdown(wait=False, cancel_futures=True)
