"""What one slow, idle or abusive client may hold: uvicorn's httptools protocol with a header
read timeout, a body read timeout and a connection cap that evicts instead of refusing.

uvicorn itself has none of the three (its `timeout_keep_alive` only runs between requests, and
its `limit_concurrency` answers every new request 503 once enough sockets are open, probes
included, so a few hundred idle sockets made the kubelet restart a healthy pod). This subclass
of `HttpToolsProtocol` is passed to uvicorn as its `http` protocol class:

- header timeout: a request's line and headers must be complete `header_timeout_s` after the
  connection opens or the request's first byte arrives; otherwise 408 and the socket closes.
- body timeout: the body must be complete `body_timeout_s` after the headers; otherwise 408, the
  socket closes, and the handler (still waiting for the body) sees a disconnect marked as a
  timeout (`timed_out(scope)`), so it logs a 408, not a client-closed 499.
- connection cap: when a new connection makes more than `max_connections`, the oldest
  connection that has not sent a complete request head (idle keep-alive, slowloris) is closed;
  only when every connection is busy with a request is the new one refused. A probe's fresh
  connection sends its request at once, so it always gets in.
- probes on a path of their own: a `GET` of one of the `fast` paths (/healthz, /readyz,
  /metrics) is answered by the protocol itself as soon as its head is parsed, from a plain
  function, then the connection closes (as the kubelet's probes expect): no ASGI task, no
  middleware, no queue, nothing shared with the detection work but the event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import http
import json
import types
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from kopilot.serving import logs, settings

_EXTENSION = "kopilot.timed_out"


class ConnectionObserver(Protocol):
    """Told about connections; `instruments.Instruments` turns this into Prometheus metrics."""

    def connection_event(self, event: str) -> None: ...

    def open_connections(self, count: int) -> None: ...


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """A whole response to a probe, made without the ASGI app."""

    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    def encode(self) -> bytes:
        reason = http.HTTPStatus(self.status).phrase
        lines = [
            f"HTTP/1.1 {self.status} {reason}",
            f"content-type: {self.content_type}",
            f"content-length: {len(self.body)}",
            "connection: close",
            *(f"{k}: {v}" for k, v in self.headers),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


FastPaths = Mapping[str, Callable[[], Answer]]


def timed_out(scope: Any) -> str | None:
    """The phase ("body") whose timeout closed this request's connection, or None."""
    extensions = scope.get("extensions") or {}
    mark = extensions.get(_EXTENSION)
    return None if mark is None else str(mark.get("phase"))


def _timeout_response(phase: str, seconds: float) -> bytes:
    body = json.dumps(
        {
            "error": {
                "code": f"{phase}_timeout",
                "message": f"the request's {phase} did not arrive within {seconds:g} s",
                "hint": "send the whole request at once; retry on a new connection",
            }
        }
    ).encode()
    head = (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    return head + body


class GuardedProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` with read timeouts and an evicting connection cap (see the module)."""

    guard: settings.ConnectionSettings = settings.ConnectionSettings()
    observer: ConnectionObserver | None = None
    fast: FastPaths = types.MappingProxyType({})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._opened = 0.0
        self._awaiting_head = True
        self._answered = False  # this request was a probe the protocol answered itself

    # -- uvicorn's protocol callbacks ---------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._opened = self.loop.time()
        self._awaiting_head = True
        self._arm("header", self.guard.header_timeout_s)
        self._enforce_cap()
        self._tell_open()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
        self._tell_open()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._awaiting_head = True
        self._answered = False
        self._arm("header", self.guard.header_timeout_s)

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        answer = self._fast_answer()
        if answer is not None:
            self._answered = True
            self._disarm()
            self.transport.write(answer.encode())
            self.transport.close()
            return
        self._arm("body", self.guard.body_timeout_s)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._answered:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        if not self._answered:
            super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.cycle is None or self.cycle.more_body is False:
            self._awaiting_head = True  # idle keep-alive until the next request's head

    # -- the guard ----------------------------------------------------------------------------

    def _fast_answer(self) -> Answer | None:
        if not self.fast or self.parser.get_method() != b"GET" or self.transport.is_closing():
            return None
        try:
            path = httptools.parse_url(self.url).path.decode("latin-1")
        except httptools.HttpParserInvalidURLError:
            return None
        make = self.fast.get(path)
        return None if make is None else make()

    def _arm(self, phase: str, seconds: float) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._expired, phase, seconds)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self, phase: str, seconds: float) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        answering = cycle is not None and cycle.response_started and not cycle.response_complete
        if phase == "body" and cycle is not None and not cycle.response_started:
            scope: Any = cycle.scope
            extensions = scope.get("extensions") or {}
            extensions[_EXTENSION] = {"phase": "body"}
            scope["extensions"] = extensions
            cycle.disconnected = True  # the handler's receive() now gets http.disconnect
            cycle.message_event.set()
        if not answering:
            self.transport.write(_timeout_response(phase, seconds))
        self._event(f"{phase}_timeout")
        self.transport.close()

    def _enforce_cap(self) -> None:
        if len(self.connections) <= self.guard.max_connections:
            return
        idle = [
            c
            for c in self.connections
            if isinstance(c, GuardedProtocol)
            and c is not self
            and c._awaiting_head
            and not c.transport.is_closing()
        ]
        if idle:
            victim = min(idle, key=lambda c: c._opened)
            victim._disarm()
            victim.transport.close()
            self._event("evicted")
        else:
            self._disarm()
            self.transport.close()
            self._event("refused")

    def _event(self, event: str) -> None:
        logs.logger().debug("connection", extra={"fields": {"event": event}})
        if self.observer is not None:
            self.observer.connection_event(event)

    def _tell_open(self) -> None:
        if self.observer is not None:
            self.observer.open_connections(len(self.connections))


def protocol(
    guard: settings.ConnectionSettings,
    observer: ConnectionObserver | None = None,
    fast: FastPaths | None = None,
) -> type[GuardedProtocol]:
    """A `GuardedProtocol` class bound to `guard`, `observer` and the `fast` probe paths, for
    `uvicorn.Config(http=...)`."""
    attributes = {"guard": guard, "observer": observer, "fast": dict(fast or {})}
    return type("GuardedHttpProtocol", (GuardedProtocol,), attributes)
