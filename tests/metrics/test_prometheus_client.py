"""The Prometheus client's validation, with httpx.MockTransport standing in for odd servers.
(The real server is exercised in tests/cost/test_advise_prometheus.py.)"""

from __future__ import annotations

import json
import math
import socket
from typing import Any

import httpx
import pytest

from kopilot.metrics import prometheus


def _client(status: int, body: Any) -> prometheus.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        text = body if isinstance(body, str) else json.dumps(body)
        return httpx.Response(status, text=text)

    return prometheus.Client("http://prom.test", transport=httpx.MockTransport(handler))


def _matrix(values: list[list[Any]]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [{"metric": {"__name__": "m", "pod": "p"}, "values": values}],
        },
    }


def test_nan_and_inf_samples_become_missing_with_a_note() -> None:
    c = _client(200, _matrix([[1, "1.5"], [2, "NaN"], [3, "+Inf"], [4, "-Inf"], [5, "2"]]))
    r = c.query_range("m", start=0, end=10, step=1)
    s = r.series[0]
    assert s.non_finite == 3
    assert s.samples.values[0] == 1.5 and math.isnan(s.samples.values[1])
    assert "3 of 5 samples were NaN/Inf" in r.notes[0]


@pytest.mark.parametrize(
    ("status", "body", "error", "words"),
    [
        (
            400,
            {"status": "error", "errorType": "bad_data", "error": "parse error"},
            prometheus.QueryError,
            "parse error",
        ),
        (200, "<html>nginx</html>", prometheus.BadResponseError, "not JSON"),
        (200, {"data": {}}, prometheus.BadResponseError, "no status"),
        (
            200,
            {"status": "success", "data": {"resultType": "vector", "result": []}},
            prometheus.BadResponseError,
            "expected resultType matrix",
        ),
        (200, _matrix([[1, "x"]]), prometheus.BadResponseError, "not numeric"),
        (200, _matrix([[1]]), prometheus.BadResponseError, "[time, value]"),
        (
            503,
            {"status": "success", "data": {"resultType": "matrix", "result": []}},
            prometheus.BadResponseError,
            "HTTP 503",
        ),
    ],
)
def test_bad_responses_are_refused_with_a_reason(
    status: int, body: Any, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words.replace("[", r"\[").replace("]", r"\]")):
        _client(status, body).query_range("m", start=0, end=10, step=1)


def test_instant_vector_and_scalar() -> None:
    c = _client(
        200,
        {
            "status": "success",
            "data": {
                "resultType": "vector",
                "result": [{"metric": {"node": "a"}, "value": [10, "8"]}],
            },
        },
    )
    assert c.query("x", time=10).series[0].samples.last() == 8.0
    c = _client(200, {"status": "success", "data": {"resultType": "scalar", "result": [10, "3"]}})
    assert c.query("1+2", time=10).series[0].samples.last() == 3.0


def test_unreachable_server_is_a_temporary_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with (
        prometheus.Client(f"http://127.0.0.1:{port}", timeout=2) as c,
        pytest.raises(prometheus.UnreachableError) as e,
    ):
        c.query("up", time=0)
    assert e.value.retry_after > 0
    assert "--prometheus-url" in str(e.value)
