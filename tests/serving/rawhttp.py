"""HTTP/1.1 over a bare loopback socket, for clients no HTTP library will play: half-sent
headers, bodies that stop, connections that idle or vanish. Every read has a timeout."""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import urllib.parse

READ_TIMEOUT_S = 10.0


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """What came back: a status (None if the server closed without answering) and the body."""

    status: int | None
    headers: dict[str, str]
    body: bytes


def connect(url: str) -> socket.socket:
    parsed = urllib.parse.urlsplit(url)
    assert parsed.hostname == "127.0.0.1", "tests talk to loopback only"
    sock = socket.create_connection((parsed.hostname, parsed.port or 80), timeout=READ_TIMEOUT_S)
    sock.settimeout(READ_TIMEOUT_S)
    return sock


def head(method: str, path: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def read_answer(sock: socket.socket) -> Answer:
    """Read one response (by its Content-Length) or up to EOF; `socket.timeout` if neither."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return Answer(status=None, headers={}, body=data)
        data += chunk
    raw_head, body = data.split(b"\r\n\r\n", 1)
    lines = raw_head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "-1"))
    while length < 0 or len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return Answer(status=status, headers=headers, body=body)


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed its side (EOF or reset), reading what is left."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    return True


def close_all(socks: list[socket.socket]) -> None:
    for s in socks:
        with contextlib.suppress(OSError):
            s.close()
