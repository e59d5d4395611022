"""`kube.scraping.MetricsGuard` against a working fake of the review API (no server): which
reviews it sends, how it maps their answers and faults to 401/403/500, and what it caches.
The real control plane's answers are in test_metrics_auth_on_cluster.py."""

from __future__ import annotations

from typing import Any

import pytest

from kopilot.kits import access, clocks
from kopilot.kube import apis, failures, scraping

NAME = "system:serviceaccount:monitoring:prometheus"
READER: dict[str, Any] = {"username": NAME, "groups": ["sa"]}


class FakeApi(apis.Api):
    """TokenReviews: `users` by token; SubjectAccessReviews: `allowed` users; `down` raises."""

    def __init__(self, users: dict[str, dict[str, Any]], allowed: set[str]) -> None:
        self.users = users
        self.allowed = allowed
        self.down: str | None = None  # "tokenreviews" or "subjectaccessreviews"
        self.bodies: list[dict[str, Any]] = []

    def post(self, path: str, body: object, what: str) -> dict[str, Any]:
        kind = path.rsplit("/", 1)[-1]
        assert isinstance(body, dict)
        self.bodies.append(body)
        if self.down == kind:
            raise failures.UnavailableError(f"{what}: connection refused")
        if kind == "tokenreviews":
            user = self.users.get(body["spec"]["token"])
            return {
                "status": {"authenticated": user is not None, **({"user": user} if user else {})}
            }
        name = body["spec"]["user"]
        return {"status": {"allowed": name in self.allowed}}


def _guard(api: FakeApi, clock: clocks.VirtualClock) -> scraping.MetricsGuard:
    return scraping.MetricsGuard(api, clock)


def test_a_reader_is_allowed_by_a_review_of_the_non_resource_url() -> None:
    api = FakeApi({"t": READER}, {NAME})
    answer = _guard(api, clocks.VirtualClock())("Bearer t")
    assert answer.verdict == "allowed" and answer.status == 200
    token_review, access_review = api.bodies
    assert "audiences" not in token_review["spec"]  # the API server's own audience
    assert access_review["spec"] == {
        "user": NAME,
        "groups": ["sa"],
        "nonResourceAttributes": {"path": "/metrics", "verb": "get"},
    }


@pytest.mark.parametrize(
    ("header", "down", "status"),
    [
        (None, None, 401),
        ("Bearer nobody", None, 401),
        ("Bearer other", None, 403),
        ("Bearer t", "tokenreviews", 401),  # controller-runtime: authentication failed
        ("Bearer t", "subjectaccessreviews", 500),  # controller-runtime: authorization failed
    ],
)
def test_refusals_and_faults_map_like_controller_runtime(
    header: str | None, down: str | None, status: int
) -> None:
    api = FakeApi({"t": READER, "other": {"username": "other"}}, {NAME})
    api.down = down
    assert _guard(api, clocks.VirtualClock())(header).status == status


def test_answers_are_cached_for_a_short_time_and_faults_not_at_all() -> None:
    clock = clocks.VirtualClock(0.0)
    api = FakeApi({"t": READER, "other": {"username": "other"}}, {NAME})
    guard = _guard(api, clock)
    for _ in range(4):  # a scrape every 15 s for a minute
        assert guard("Bearer t").verdict == "allowed"
        clock.sleep(14.9)
    assert guard.reviews == 1
    clock.sleep(1.0)  # past the 60 s an allowed answer is kept
    assert guard("Bearer t").verdict == "allowed"
    assert guard.reviews == 2
    api.down = "subjectaccessreviews"
    assert guard("Bearer other").status == 500
    api.down = None
    assert guard("Bearer other").status == 403  # the fault was not kept
    assert guard.reviews == 4


def test_the_cache_is_bounded_and_drops_the_oldest() -> None:
    clock = clocks.VirtualClock(0.0)
    cache = access.AnswerCache(clock, max_entries=2)
    yes = access.Access(verdict="allowed", reason="ok")
    for token in ("a", "b", "c"):
        cache.put(token, yes)
    assert len(cache) == 2
    assert cache.get("a") is None and cache.get("c") == yes
