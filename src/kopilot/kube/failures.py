"""What can go wrong talking to the API server, sorted into kopilot's error hierarchy.

| what happened | error | retried? |
|---|---|---|
| 409 Conflict (someone changed the object first) | `ConflictError` (temporary) | re-read, then retry |
| 429 Too Many Requests (API priority and fairness) | `ThrottledError` (temporary, Retry-After) | yes |
| 429 from the Eviction API | `DisruptionBlockedError` (temporary) | no: a PodDisruptionBudget says "not now" |
| 5xx, timeouts, connection refused or reset | `UnavailableError` (temporary) | yes, with backoff |
| 404 Not Found | `NotFoundError` (permanent) | no |
| other 4xx (400 bad request, 403 forbidden, 422 invalid, ...) | `RejectedError` (permanent) | no: reported |
"""

from __future__ import annotations

import contextlib
import json

import urllib3
from kubernetes.client import exceptions as k8s_exceptions

from kopilot.model import errors


class KubeError(errors.KopilotError):
    """Base of the errors the live adapter raises."""

    status: int | None = None


class ConflictError(KubeError, errors.TemporaryError):
    """409: the object changed since it was read; read it again and retry."""


class ThrottledError(KubeError, errors.TemporaryError):
    """429: the API server asks kopilot to slow down (its Retry-After is `retry_after`)."""


class DisruptionBlockedError(KubeError, errors.TemporaryError):
    """The Eviction API answered 429: a PodDisruptionBudget allows no disruption right now."""


class UnavailableError(KubeError, errors.TemporaryError):
    """5xx, a timeout or a broken connection: the API server may answer later."""


class RejectedError(KubeError, errors.PermanentError):
    """A 4xx other than 409/429: the request itself is wrong or not allowed; retrying won't help."""


class NotFoundError(RejectedError):
    """404: the object (or the namespace) does not exist."""


def classify(exc: BaseException, what: str) -> KubeError:
    """The kopilot error for a client exception raised while doing `what`."""
    if isinstance(exc, KubeError):
        return exc
    if isinstance(exc, k8s_exceptions.ApiException):
        return _from_status(int(exc.status or 0), _message(exc), what, exc)
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError | TimeoutError):
        err: KubeError = UnavailableError(
            f"{what}: API server unreachable ({type(exc).__name__}: {exc})", retry_after=1.0
        )
        return err
    raise TypeError(f"not an API error: {exc!r}")


def from_response(
    status: int, body: bytes, what: str, *, retry_after: str | None = None
) -> KubeError:
    """The kopilot error for a raw (non-2xx) response; `retry_after` is its Retry-After header."""
    err = _from_status(status, _body_message(body), what, None)
    if isinstance(err, ThrottledError) and retry_after is not None:
        with contextlib.suppress(ValueError):
            err.retry_after = max(0.1, float(retry_after))
    return err


def _from_status(
    status: int, message: str, what: str, exc: k8s_exceptions.ApiException | None
) -> KubeError:
    text = f"{what}: HTTP {status}: {message}"
    err: KubeError
    if status == 409:
        err = ConflictError(text, retry_after=0.1)
    elif status == 429:
        err = ThrottledError(text, retry_after=_retry_after(exc))
    elif status >= 500 or status == 0:
        err = UnavailableError(text, retry_after=1.0)
    elif status == 404:
        err = NotFoundError(text)
    else:
        err = RejectedError(text)
    err.status = status
    return err


def _retry_after(exc: k8s_exceptions.ApiException | None) -> float:
    headers = getattr(exc, "headers", None) or {}
    try:
        return max(0.1, float(headers.get("Retry-After", 1)))
    except (TypeError, ValueError):
        return 1.0


def _message(exc: k8s_exceptions.ApiException) -> str:
    body: object = exc.body
    if isinstance(body, bytes):
        return _body_message(body)
    if isinstance(body, str):
        return _body_message(body.encode())
    return str(exc.reason or "")


def _body_message(body: bytes) -> str:
    try:
        status = json.loads(body)
    except ValueError:
        return body[:200].decode(errors="replace")
    if isinstance(status, dict):
        return str(status.get("message") or status.get("reason") or "")
    return ""
