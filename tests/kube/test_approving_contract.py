"""The TokenReview contract kopilot relies on, against a working fake of the API (no server):
a review that names no audience of the token vouches only for the API server's own audience."""

from __future__ import annotations

from typing import Any

from kopilot.governance import approvals
from kopilot.kube import apis, approving

REQUEST = approvals.Request(
    id="abc",
    time=0.0,
    expires=60.0,
    record={},
    summary="scale",
    digest="sha256:0",
    state="pending",
    namespace="ml",
)


class FakeApi(apis.Api):
    """Answers TokenReviews with `review` and allows every SubjectAccessReview."""

    def __init__(self, review: dict[str, Any]) -> None:
        self.review = review
        self.asked: list[str] = []

    def post(self, path: str, body: object, what: str) -> dict[str, Any]:
        self.asked.append(path.rsplit("/", 1)[-1])
        if path.endswith("tokenreviews"):
            return {"status": self.review}
        return {"status": {"allowed": True}}


USER = {"username": "alice", "groups": ["ml-oncall"]}


def test_an_authenticator_that_names_no_audience_is_not_trusted() -> None:
    api = FakeApi({"authenticated": True, "user": USER})  # status.audiences left empty
    refused = approving.check(api, "token", REQUEST)
    assert refused.approver is None and "vouches for no audience" in refused.reason
    assert api.asked == ["tokenreviews"]


def test_a_review_for_the_kopilot_audience_goes_on_to_rbac() -> None:
    api = FakeApi({"authenticated": True, "user": USER, "audiences": ["kopilot"]})
    allowed = approving.check(api, "token", REQUEST)
    assert allowed.approver == approvals.Approver(name="alice", via="kubernetes")
    assert api.asked == ["tokenreviews", "subjectaccessreviews"]
