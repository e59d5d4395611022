"""API failures are sorted: transient ones retried with backoff, permanent ones reported at once."""

from __future__ import annotations

import json
import random
from collections.abc import Callable

import pytest
import urllib3
from kubernetes.client import exceptions as k8s_exceptions

from kopilot.kits import clocks
from kopilot.kube import failures, retrying
from kopilot.model import errors


def api_error(
    status: int, message: str = "boom", headers: dict[str, str] | None = None
) -> Exception:
    exc = k8s_exceptions.ApiException(status=status, reason="reason")
    exc.body = json.dumps({"kind": "Status", "message": message}).encode()
    exc.headers = headers or {}
    return exc


def flaky(
    errors_first: list[Exception], value: str = "done"
) -> tuple[Callable[[], str], list[int]]:
    calls = [0]

    def fn() -> str:
        calls[0] += 1
        if errors_first:
            raise errors_first.pop(0)
        return value

    return fn, calls


def retrier(clock: clocks.VirtualClock, attempts: int = 5) -> retrying.Retrier:
    return retrying.Retrier(clock, random.Random(1), retrying.Backoff(attempts=attempts))


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (409, failures.ConflictError),
        (429, failures.ThrottledError),
        (500, failures.UnavailableError),
        (503, failures.UnavailableError),
        (404, failures.NotFoundError),
        (403, failures.RejectedError),
        (422, failures.RejectedError),
        (400, failures.RejectedError),
    ],
)
def test_statuses_are_classified(status: int, kind: type[failures.KubeError]) -> None:
    err = failures.classify(api_error(status, "the reason"), "scale ml/web")
    assert type(err) is kind
    assert err.status == status
    assert "scale ml/web: HTTP" in str(err) and "the reason" in str(err)
    temporary = status in (409, 429) or status >= 500
    assert isinstance(err, errors.TemporaryError) is temporary
    assert isinstance(err, errors.PermanentError) is not temporary


def test_transport_failures_are_temporary() -> None:
    err = failures.classify(urllib3.exceptions.ReadTimeoutError(None, "/", "timed out"), "list")
    assert isinstance(err, failures.UnavailableError)
    assert isinstance(
        failures.classify(ConnectionRefusedError(), "list"), failures.UnavailableError
    )


def test_server_errors_are_retried_with_growing_backoff_then_succeed() -> None:
    clock = clocks.VirtualClock()
    fn, calls = flaky([api_error(503), api_error(500), urllib3.exceptions.ProtocolError("reset")])
    r = retrier(clock)
    assert r.call("read", fn) == "done"
    assert calls[0] == 4
    assert r.retries == 3
    # jittered backoff: 0.2 s * 2**i * [0.5, 1): between 0.7 and 1.4 s in total
    assert 0.7 <= clock.now() < 1.4


def test_permanent_errors_are_raised_at_once_never_looped_on() -> None:
    clock = clocks.VirtualClock()
    fn, calls = flaky([api_error(403, "forbidden: cannot patch deployments/scale")])
    with pytest.raises(failures.RejectedError, match="cannot patch") as info:
        retrier(clock).call("scale ml/web", fn)
    assert calls[0] == 1
    assert clock.now() == 0.0
    assert isinstance(info.value.__cause__, k8s_exceptions.ApiException)


def test_retries_stop_after_the_last_attempt() -> None:
    clock = clocks.VirtualClock()
    fn, calls = flaky([api_error(500) for _ in range(10)])
    with pytest.raises(failures.UnavailableError):
        retrier(clock, attempts=3).call("read", fn)
    assert calls[0] == 3


def test_conflicts_are_retried_only_when_the_call_rereads() -> None:
    clock = clocks.VirtualClock()
    fn, calls = flaky([api_error(409)])
    with pytest.raises(failures.ConflictError):
        retrier(clock).call("replace lease", fn)
    assert calls[0] == 1
    fn, calls = flaky([api_error(409), api_error(409)])
    assert retrier(clock).call("read-modify-write", fn, conflicts=True) == "done"
    assert calls[0] == 3


def test_throttling_waits_as_long_as_the_server_says() -> None:
    clock = clocks.VirtualClock()
    fn, _ = flaky([api_error(429, headers={"Retry-After": "3"})])
    assert retrier(clock).call("list pods", fn) == "done"
    assert clock.now() == 3.0


def test_a_pdb_block_is_not_retried() -> None:
    clock = clocks.VirtualClock()
    blocked = failures.DisruptionBlockedError("evict ml/web-1: HTTP 429")
    fn, calls = flaky([blocked])
    with pytest.raises(failures.DisruptionBlockedError):
        retrier(clock).call("evict", fn)
    assert calls[0] == 1


def test_other_exceptions_are_not_swallowed() -> None:
    clock = clocks.VirtualClock()
    fn, _ = flaky([KeyError("bug")])
    with pytest.raises(KeyError):
        retrier(clock).call("read", fn)
