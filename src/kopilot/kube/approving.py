"""Who may approve a decision, in a cluster: the API server says, not the person asking.

An approver presents a bearer token (a ServiceAccount token, or an OIDC token the API server
accepts). kopilot asks the API server:
1. a TokenReview (`authentication.k8s.io/v1`) with the audience `kopilot` (by default): is the
   token valid, and whose is it? A token minted for kopilot (`kubectl create token NAME
   --audience kopilot`) is refused by the API server itself, so kopilot cannot replay it there;
2. a SubjectAccessReview (`authorization.k8s.io/v1`) for that user and groups: may they `approve`
   `decisions.kopilot.io`, named by the request id, in the namespace of the proposed action (none
   for a node-level action)? RBAC answers, so a platform team grants approval with a Role or a
   ClusterRole like any other permission, per namespace if it wants.

The answer is a `Check` (data): the verified `Approver` or the reason for the refusal. kopilot's
own identity needs `create` on `tokenreviews` and `subjectaccessreviews` (the built-in
`system:auth-delegator` ClusterRole). `check` is what `kopilot approve --token-file` and the web
console call before they write an answer to the queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict, cast

from kopilot.governance import approvals
from kopilot.kube import apis

GROUP = "kopilot.io"
RESOURCE = "decisions"
VERB = "approve"
AUDIENCE = "kopilot"


class UserInfo(TypedDict):
    username: str
    uid: NotRequired[str]
    groups: NotRequired[list[str]]
    extra: NotRequired[dict[str, list[str]]]


class TokenReviewStatus(TypedDict):
    authenticated: NotRequired[bool]
    user: NotRequired[UserInfo]
    audiences: NotRequired[list[str]]
    error: NotRequired[str]


class TokenReview(TypedDict):
    apiVersion: str
    kind: str
    spec: dict[str, Any]
    status: NotRequired[TokenReviewStatus]


class ResourceAttributes(TypedDict):
    group: str
    resource: str
    verb: str
    name: str
    namespace: NotRequired[str]


class NonResourceAttributes(TypedDict):
    path: str
    verb: str


class SubjectAccessReviewSpec(TypedDict):
    user: str
    uid: NotRequired[str]
    groups: NotRequired[list[str]]
    extra: NotRequired[dict[str, list[str]]]
    resourceAttributes: NotRequired[ResourceAttributes]
    nonResourceAttributes: NotRequired[NonResourceAttributes]


class SubjectAccessReviewStatus(TypedDict):
    allowed: bool
    denied: NotRequired[bool]
    reason: NotRequired[str]
    evaluationError: NotRequired[str]


class SubjectAccessReview(TypedDict):
    apiVersion: str
    kind: str
    spec: SubjectAccessReviewSpec
    status: NotRequired[SubjectAccessReviewStatus]


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """The API server's answer: `approver` when allowed, else None and the `reason`."""

    approver: approvals.Approver | None
    reason: str

    @property
    def allowed(self) -> bool:
        return self.approver is not None


def authenticate(
    api: apis.Api, token: str, *, audiences: tuple[str, ...] = (AUDIENCE,)
) -> tuple[UserInfo | None, str]:
    """Whose is `token`, by a TokenReview (empty `audiences`: the API server's own): the user, or
    None and why not. Faults talking to the API server raise `KubeError`s."""
    token = token.strip()
    if not token:
        return None, "the token is empty"
    review: TokenReview = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token, **({"audiences": list(audiences)} if audiences else {})},
    }
    answer = cast(
        TokenReview,
        api.post("/apis/authentication.k8s.io/v1/tokenreviews", review, "review a token"),
    )
    status = answer.get("status") or {}
    user = status.get("user")
    wanted = f" for the audience {', '.join(audiences)}" if audiences else ""
    if not status.get("authenticated") or user is None or not user.get("username"):
        why = status.get("error") or "the API server does not accept it"
        return None, f"the token is not valid{wanted}: {why}"
    if audiences and not set(audiences) & set(status.get("audiences") or ()):
        # The API contract: an authenticator that is not audience-aware answers with no
        # audiences, and then the token is only valid for the API server itself.
        return None, f"the token is not valid{wanted}: the API server vouches for no audience of it"
    return user, user["username"]


def authorize(
    api: apis.Api, user: UserInfo, attributes: ResourceAttributes | NonResourceAttributes
) -> tuple[bool, str]:
    """May `user` do what `attributes` say, by a SubjectAccessReview: the answer and RBAC's reason
    (or the evaluation error). Faults talking to the API server raise `KubeError`s."""
    spec: SubjectAccessReviewSpec = {"user": user["username"]}
    if "path" in attributes:
        spec["nonResourceAttributes"] = cast(NonResourceAttributes, attributes)
    else:
        spec["resourceAttributes"] = attributes
    for key in ("uid", "groups", "extra"):
        if key in user:
            spec[key] = user[key]
    access: SubjectAccessReview = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": spec,
    }
    verdict = cast(
        SubjectAccessReview,
        api.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", access, "review an access"),
    )
    allowed = verdict.get("status") or {"allowed": False}
    if not allowed.get("allowed") or allowed.get("denied"):
        return False, allowed.get("reason") or allowed.get("evaluationError") or (
            "no RBAC rule allows it"
        )
    return True, allowed.get("reason") or ""


def check(
    api: apis.Api,
    token: str,
    request: approvals.Request,
    *,
    note: str = "",
    audiences: tuple[str, ...] = (AUDIENCE,),
) -> Check:
    """May the holder of `token` answer `request`? Faults talking to the API server (kopilot not
    allowed to create the reviews, an unreachable server) raise `KubeError`s."""
    user, why = authenticate(api, token, audiences=audiences)
    if user is None:
        return Check(approver=None, reason=why)
    attributes: ResourceAttributes = {
        "group": GROUP,
        "resource": RESOURCE,
        "verb": VERB,
        "name": request.id,
    }
    if request.namespace:
        attributes["namespace"] = request.namespace
    allowed, why = authorize(api, user, attributes)
    where = f" in namespace {request.namespace}" if request.namespace else " (cluster-wide)"
    if not allowed:
        return Check(
            approver=None,
            reason=f"{user['username']} may not {VERB} {RESOURCE}.{GROUP}{where}: {why}",
        )
    return Check(
        approver=approvals.Approver(name=user["username"], via="kubernetes", note=note),
        reason=f"{user['username']} may {VERB} {RESOURCE}.{GROUP}{where}",
    )


def identify(
    request: approvals.Request,
    *,
    token: str | None,
    api: apis.Api | None,
    in_cluster: bool,
    note: str = "",
) -> Check:
    """Who answers `request`: the user of `token` as the API server checks it (through `api`),
    or, outside a cluster and without a token, the OS user of this process. In a cluster a token
    is required: the OS user of a pod says nothing about the person."""
    if token is None or api is None:
        if in_cluster:
            return Check(
                approver=None,
                reason="in a cluster an approval needs the approver's token (--token-file PATH, "
                "e.g. from `kubectl create token NAME --audience kopilot`)",
            )
        me = approvals.os_user(note)
        return Check(approver=me, reason=f"the OS user {me.name}")
    return check(api, token, request, note=note)
