"""Who may scrape kopilot's `/metrics`: the API server says (`kopilot run --metrics-auth`).

What controller-runtime's `filters.WithAuthenticationAndAuthorization` and kube-rbac-proxy do, with
the reviews of `kopilot.kube.approving`:
1. the request's bearer token goes to a TokenReview for the API server's own audience (a
   Prometheus ServiceAccount token as mounted in its pod); no token or a bad one: 401;
2. its user goes to a SubjectAccessReview on the non-resource URL `/metrics`, verb `get`
   (a ClusterRole with `nonResourceURLs: ["/metrics"]`, the chart's `<release>-metrics-reader`);
   no such grant: 403.
An API server that cannot answer: 401 when it was the TokenReview, 500 when it was the
SubjectAccessReview, as controller-runtime does (the scrape fails and Prometheus' `up` says so;
nothing is served on a guess). Answers are cached for a short time (`kits.access.AnswerCache`) so
that a scrape every 15 s costs two reviews a minute, not eight; failures are not cached.
kopilot's identity needs `create` on `tokenreviews` and `subjectaccessreviews`.
"""

from __future__ import annotations

import logging
import random
import threading

from kubernetes import client as k8s_client

from kopilot.kits import access, clocks
from kopilot.kube import apis, approving, failures, retrying

PATH = "/metrics"
VERB = "get"

log = logging.getLogger(__name__)


class MetricsGuard:
    """A `kits.access.Gate` for `/metrics`: call it with the `Authorization` header."""

    def __init__(
        self,
        api: apis.Api,
        clock: clocks.Clock,
        *,
        cache: access.AnswerCache | None = None,
        path: str = PATH,
    ) -> None:
        self._api = api
        self._cache = cache if cache is not None else access.AnswerCache(clock)
        self._path = path
        self._lock = threading.Lock()
        self.reviews = 0  # TokenReviews sent (a cached answer sends none)

    def __call__(self, header: str | None) -> access.Access:
        token = access.bearer(header)
        if token is None:
            return access.Access(
                verdict="unauthenticated",
                reason="no bearer token (send Authorization: Bearer TOKEN)",
            )
        with self._lock:
            cached = self._cache.get(token)
        if cached is not None:
            return cached
        answer = self._review(token)
        with self._lock:
            self._cache.put(token, answer)
        return answer

    def _review(self, token: str) -> access.Access:
        with self._lock:
            self.reviews += 1
        try:
            user, why = approving.authenticate(self._api, token, audiences=())
        except failures.KubeError as e:
            log.warning("metrics: the TokenReview failed: %s", e)
            return access.Access(verdict="unverified", reason="authentication failed")
        if user is None:
            return access.Access(verdict="unauthenticated", reason=why)
        name = user["username"]
        attributes: approving.NonResourceAttributes = {"path": self._path, "verb": VERB}
        try:
            allowed, why = approving.authorize(self._api, user, attributes)
        except failures.KubeError as e:
            log.warning("metrics: the SubjectAccessReview for %s failed: %s", name, e)
            return access.Access(verdict="failed", reason=f"authorization for user {name} failed")
        if not allowed:
            return access.Access(
                verdict="forbidden",
                reason=f"{name} may not {VERB} {self._path}: {why}",
            )
        return access.Access(verdict="allowed", reason=f"{name} may {VERB} {self._path}")


def guard_for(
    api_client: k8s_client.ApiClient, *, clock: clocks.Clock, rng: random.Random
) -> MetricsGuard:
    """A guard over its own `Api`: short timeouts and two tries, so that a slow API server fails
    a scrape (Prometheus' scrape timeout is 10 s by default) rather than hangs it."""
    retrier = retrying.Retrier(clock, rng, retrying.Backoff(attempts=2, base_s=0.2, max_s=1.0))
    return MetricsGuard(apis.Api(api_client, retrier, timeout_s=4.0), clock)
