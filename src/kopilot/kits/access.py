"""Who may read an endpoint: the answer as data, and a small cache of answers.

`kopilot run --metrics-auth` guards `/metrics` the way controller-runtime's
`filters.WithAuthenticationAndAuthorization` and kube-rbac-proxy do: a TokenReview, then a
SubjectAccessReview (in `kopilot.kube.scraping`). The HTTP server (`kopilot.metrics.exporter`) only
sees a `Gate`: a callable from the request's `Authorization` header to an `Access`, which it turns
into a status code. Both layers meet here, below them.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from kopilot.kits import clocks

Verdict = Literal["allowed", "unauthenticated", "unverified", "forbidden", "failed"]

STATUS: dict[Verdict, int] = {
    "allowed": 200,
    "unauthenticated": 401,
    "unverified": 401,
    "forbidden": 403,
    "failed": 500,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Access:
    """One answer: `verdict` and why. allowed; unauthenticated: no token or a bad one; unverified:
    the API server could not check the token (401 too, as controller-runtime answers); forbidden:
    a valid token without the RBAC verb; failed: the API server could not authorize it (500)."""

    verdict: Verdict
    reason: str

    @property
    def status(self) -> int:
        return STATUS[self.verdict]


Gate = Callable[[str | None], Access]
"""The request's `Authorization` header (None when absent) to an answer."""


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` header (RFC 6750), else None."""
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


class AnswerCache:
    """Answers by token for a short time: `allowed_ttl_s` for allowed, `denied_ttl_s` for
    unauthenticated and forbidden; unverified and failed answers are never kept. At most `max_entries` (the oldest go
    first); tokens are kept as SHA-256 digests, never in clear. Not thread-safe: hold a lock."""

    def __init__(
        self,
        clock: clocks.Clock,
        *,
        allowed_ttl_s: float = 60.0,
        denied_ttl_s: float = 30.0,
        max_entries: int = 1024,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._clock = clock
        self.allowed_ttl_s = allowed_ttl_s
        self.denied_ttl_s = denied_ttl_s
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, tuple[float, Access]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def _key(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()

    def get(self, token: str) -> Access | None:
        key = self._key(token)
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, answer = entry
        if self._clock.now() >= expires:
            del self._entries[key]
            return None
        return answer

    def put(self, token: str, answer: Access) -> None:
        if answer.verdict in ("unverified", "failed"):
            return
        ttl = self.allowed_ttl_s if answer.verdict == "allowed" else self.denied_ttl_s
        if ttl <= 0:
            return
        key = self._key(token)
        self._entries.pop(key, None)
        self._entries[key] = (self._clock.now() + ttl, answer)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
