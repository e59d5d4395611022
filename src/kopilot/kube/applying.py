"""Carry out approved actions through the API, idempotently, and leave a trail on each object.

| action | API | trail |
|---|---|---|
| Scale | the workload's `scale` subresource (merge patch) | annotations (when allowed to patch the workload) + Event on the workload |
| Bind | the pod's `binding` subresource (the extender/scheduler path) | annotations (copied by the API server onto the pod) + Event |
| Cordon | `spec.unschedulable` on the node (merge patch); `drain` evicts its pods | annotations + Event on the node |
| Restart | the Eviction API (respects PodDisruptionBudgets: 429 = blocked) | Event on the pod |
| Alert, Recommend | an Event on the subject | - |
| Repartition | evict the node's GPU pods (Eviction API, PDBs respected), then the GPU operator's `nvidia.com/mig.config` label = the named config of the layout (`scheduling.migconfigs`); a layout with no named config is not carried out | annotations + Warning Event on the node |

Each object kopilot changes carries the decision id (`kopilot.io/decision-id`): an action whose
decision the object already carries, or one older than the object's last kopilot action, is
skipped as done. Outcomes (done, skipped, blocked by a PDB, refused) are `Applied` values;
only faults raise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, cast

from kopilot.kube import apis, converting, events, failures, notes, objects
from kopilot.loop import worlds
from kopilot.model import actions, cluster, errors
from kopilot.scheduling import migconfigs

log = logging.getLogger(__name__)

WORKLOAD_PATHS = {"Deployment": "deployments", "StatefulSet": "statefulsets"}
SUBJECT_KINDS = {
    "pod": ("Pod", "v1"),
    "node": ("Node", "v1"),
    "deployment": ("Deployment", "apps/v1"),
    "statefulset": ("StatefulSet", "apps/v1"),
}


class Actuator:
    """Applies one action at a time; `workload_kinds` says whether a service is a Deployment or
    a StatefulSet (from the World's cache)."""

    def __init__(self, api: apis.Api, recorder: events.Recorder) -> None:
        self._api = api
        self._events = recorder

    def apply(
        self, action: actions.Action, now: float, *, decision: str, workload_kind: str | None
    ) -> worlds.Applied:
        try:
            match action:
                case actions.Scale():
                    return self._scale(action, now, decision, workload_kind or "Deployment")
                case actions.Bind():
                    return self._bind(action, now, decision)
                case actions.Cordon():
                    return self._cordon(action, now, decision)
                case actions.Restart():
                    return self._restart(action, now, decision)
                case actions.Alert() | actions.Recommend():
                    return self._tell(action, now, decision, workload_kind)
                case actions.Repartition():
                    return self._repartition(action, now, decision)
        except failures.KubeError as e:
            return worlds.Applied(ok=False, detail=f"{actions.describe(action)}: {e}")
        raise TypeError(f"unknown action {action!r}")  # pragma: no cover

    # -- Scale ------------------------------------------------------------------------------
    def _scale(self, action: actions.Scale, now: float, decision: str, kind: str) -> worlds.Applied:
        namespace, name = action.service.split("/", 1)
        resource = WORKLOAD_PATHS.get(kind)
        if resource is None:
            return worlds.Applied(ok=False, detail=f"cannot scale a {kind} ({action.service})")
        path = f"/apis/apps/v1/namespaces/{namespace}/{resource}/{name}"
        current = self._api.get(path, f"read {kind} {action.service}")
        done = _already(current, decision, now)
        if done:
            return worlds.Applied(ok=True, detail=f"{actions.describe(action)}: {done}")
        self._api.patch(
            f"{path}/scale", {"spec": {"replicas": action.replicas}}, f"scale {action.service}"
        )
        untracked = ""
        try:
            self._api.patch(path, _trail(action, now, decision), f"annotate {action.service}")
        except failures.RejectedError as e:
            # Least privilege (the chart's default) grants the scale subresource only: the
            # workload is scaled, its Event below is the trail, and a retried decision re-sets
            # the same replica count.
            if e.status != 403:
                raise
            untracked = " (no trail annotations: not allowed to patch the workload)"
        ref = _ref(current, kind, "apps/v1")
        self._events.record(
            ref, reason="KopilotScaled", message=_message(action, decision), now=now
        )
        return worlds.Applied(
            ok=True, detail=f"scaled {action.service} to {action.replicas}{untracked}"
        )

    # -- Bind -------------------------------------------------------------------------------
    def _bind(self, action: actions.Bind, now: float, decision: str) -> worlds.Applied:
        namespace, name = action.pod.split("/", 1)
        pod_path = f"/api/v1/namespaces/{namespace}/pods/{name}"
        trail = _trail(action, now, decision)["metadata"]
        if action.gpu_indices:
            trail["annotations"][cluster.ANNOTATION_GPU_INDICES] = ",".join(
                str(i) for i in action.gpu_indices
            )
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace, **trail},
            "target": {"apiVersion": "v1", "kind": "Node", "name": action.node},
        }
        try:
            self._api.post(f"{pod_path}/binding", body, f"bind {action.pod}")
        except failures.ConflictError:
            pod = self._api.get(pod_path, f"read pod {action.pod}")
            bound = (pod.get("spec") or {}).get("nodeName")
            if bound == action.node:
                return worlds.Applied(ok=True, detail=f"{action.pod} already on {action.node}")
            return worlds.Applied(
                ok=False, detail=f"bind {action.pod}: already bound to {bound}, not {action.node}"
            )
        ref = events.ObjectRef(kind="Pod", name=name, namespace=namespace)
        self._events.record(ref, reason="KopilotBound", message=_message(action, decision), now=now)
        return worlds.Applied(ok=True, detail=f"bound {action.pod} to {action.node}")

    # -- Cordon -----------------------------------------------------------------------------
    def _cordon(self, action: actions.Cordon, now: float, decision: str) -> worlds.Applied:
        path = f"/api/v1/nodes/{action.node}"
        node = self._api.get(path, f"read node {action.node}")
        done = _already(node, decision, now)
        verb = "uncordon" if action.uncordon else "cordon"
        if done and not action.drain:
            return worlds.Applied(ok=True, detail=f"{verb} {action.node}: {done}")
        if not done:
            body = _trail(action, now, decision)
            body["spec"] = {"unschedulable": not action.uncordon}
            self._api.patch(path, body, f"{verb} {action.node}")
            self._events.record(
                _ref(node, "Node", "v1"),
                reason="KopilotUncordoned" if action.uncordon else "KopilotCordoned",
                message=_message(action, decision),
                now=now,
                warning=not action.uncordon,
            )
        if action.drain and not action.uncordon:
            return self._drain(action, now, decision)
        return worlds.Applied(ok=True, detail=f"{verb}ed {action.node}")

    def _drain(self, action: actions.Cordon, now: float, decision: str) -> worlds.Applied:
        evicted, blocked = self._evict_pods(action.node, decision, _drainable)
        if blocked:
            return worlds.Applied(
                ok=False,
                detail=f"drain {action.node}: evicted {evicted}; blocked by a "
                f"PodDisruptionBudget: {', '.join(blocked)} (retried next cycle)",
            )
        return worlds.Applied(
            ok=True, detail=f"cordoned and drained {action.node} ({evicted} evicted)"
        )

    # -- Restart ----------------------------------------------------------------------------
    def _restart(self, action: actions.Restart, now: float, decision: str) -> worlds.Applied:
        namespace, name = action.pod.split("/", 1)
        outcome = self._evict(namespace, name, decision)
        if outcome == "blocked":
            return worlds.Applied(
                ok=False,
                detail=f"restart {action.pod}: blocked by a PodDisruptionBudget (the Eviction "
                "API answered 429); not retried until the next cycle",
            )
        if outcome == "gone":
            return worlds.Applied(ok=True, detail=f"restart {action.pod}: already gone")
        ref = events.ObjectRef(kind="Pod", name=name, namespace=namespace)
        self._events.record(
            ref, reason="KopilotRestarted", message=_message(action, decision), now=now
        )
        return worlds.Applied(ok=True, detail=f"evicted {action.pod}")

    def _evict_pods(
        self, node: str, decision: str, movable: Callable[[Mapping[str, Any]], bool]
    ) -> tuple[int, list[str]]:
        """Evict the pods on `node` that `movable` picks: how many went, and those a PDB kept."""
        pods = self._api.get(
            "/api/v1/pods",
            f"list pods on {node}",
            fieldSelector=f"spec.nodeName={node}",
        )
        blocked: list[str] = []
        evicted = 0
        for pod in pods.get("items") or []:
            if not movable(pod):
                continue
            meta = pod.get("metadata") or {}
            namespace, name = meta.get("namespace", "default"), meta.get("name", "")
            outcome = self._evict(namespace, name, decision)
            if outcome == "blocked":
                blocked.append(f"{namespace}/{name}")
            elif outcome == "evicted":
                evicted += 1
        return evicted, blocked

    def _evict(self, namespace: str, name: str, decision: str) -> str:
        """'evicted', 'gone' (no such pod, or already terminating) or 'blocked' (a PDB)."""
        path = f"/api/v1/namespaces/{namespace}/pods/{name}"
        body = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": namespace},
        }
        what = f"evict {namespace}/{name}"

        def post() -> None:
            try:
                self._api.raw("POST", f"{path}/eviction", what, body=body).data  # noqa: B018
            except failures.ThrottledError as e:
                # The Eviction API's 429: a PodDisruptionBudget says "not now". Not retried.
                raise failures.DisruptionBlockedError(str(e)) from e

        try:
            pod = self._api.get(path, f"read pod {namespace}/{name}")
            if (pod.get("metadata") or {}).get("deletionTimestamp"):
                return "gone"
            self._api.retrier.call(what, post)
        except failures.NotFoundError:
            return "gone"
        except failures.DisruptionBlockedError:
            return "blocked"
        log.info("evicted %s/%s (decision %s)", namespace, name, decision)
        return "evicted"

    # -- Alert, Recommend, Repartition ------------------------------------------------------
    def _tell(
        self,
        action: actions.Alert | actions.Recommend,
        now: float,
        decision: str,
        workload_kind: str | None,
    ) -> worlds.Applied:
        ref = _subject_ref(action.subject, workload_kind)
        if ref is None:
            return worlds.Applied(
                ok=False, detail=f"{action.kind}: cannot tell which object {action.subject!r} is"
            )
        warning = isinstance(action, actions.Alert) and action.severity != actions.Severity.INFO
        reason = "KopilotAlert" if isinstance(action, actions.Alert) else "KopilotRecommendation"
        ok = self._events.record(
            ref, reason=reason, message=_message(action, decision), now=now, warning=warning
        )
        return worlds.Applied(ok=ok, detail=f"event {reason} on {action.subject}")

    def _repartition(
        self, action: actions.Repartition, now: float, decision: str
    ) -> worlds.Applied:
        """Drain the node's GPU pods (PDB-respecting evictions), then set the GPU operator's
        `nvidia.com/mig.config` label to the named config that holds the layout; the operator's
        MIG manager does the rest (and reports in `nvidia.com/mig.config.state`)."""
        config = migconfigs.name_for(action.layout)
        ref = events.ObjectRef(kind="Node", name=action.node)
        if config is None:
            why = (
                f"repartition {action.node}: {action.layout.describe()} ({action.layout.model}) "
                "has no named config in the GPU operator's default mig-parted ConfigMap; not "
                "carried out (add a custom config and label the node yourself)"
            )
            self._events.record(
                ref, reason="KopilotRepartitionUnnamed", message=why, now=now, warning=True
            )
            return worlds.Applied(ok=False, detail=why)
        path = f"/api/v1/nodes/{action.node}"
        node = self._api.get(path, f"read node {action.node}")
        labels = (node.get("metadata") or {}).get("labels") or {}
        was = labels.get(migconfigs.LABEL_CONFIG)
        done = _already(node, decision, now)
        if done or was == config:
            return worlds.Applied(
                ok=True, detail=f"repartition {action.node}: {done or f'already {config}'}"
            )
        evicted, blocked = self._evict_pods(action.node, decision, _must_leave_gpus)
        if blocked:
            return worlds.Applied(
                ok=False,
                detail=f"repartition {action.node}: evicted {evicted} GPU pod(s); blocked by a "
                f"PodDisruptionBudget: {', '.join(blocked)}; {migconfigs.LABEL_CONFIG} left at "
                f"{was} (proposed again next cycle)",
            )
        body = _trail(action, now, decision)
        body["metadata"]["labels"] = {migconfigs.LABEL_CONFIG: config}
        self._api.patch(path, body, f"label {action.node} {migconfigs.LABEL_CONFIG}={config}")
        self._events.record(
            _ref(node, "Node", "v1"),
            reason="KopilotRepartitioned",
            message=f"{migconfigs.LABEL_CONFIG} {was} -> {config} after evicting {evicted} GPU "
            f"pod(s): {_message(action, decision)}",
            now=now,
            warning=True,
        )
        return worlds.Applied(
            ok=True,
            detail=f"labelled {action.node} {migconfigs.LABEL_CONFIG}={config} (was {was}) "
            f"after evicting {evicted} GPU pod(s); the GPU operator's MIG manager applies it",
        )


def _daemon(meta: Mapping[str, Any]) -> bool:
    return any(o.get("kind") == "DaemonSet" for o in meta.get("ownerReferences") or [])


def _drainable(pod: Mapping[str, Any]) -> bool:
    """A drain evicts every pod but DaemonSet pods and static (mirror) pods."""
    meta = pod.get("metadata") or {}
    if _daemon(meta):
        return False
    return "kubernetes.io/config.mirror" not in (meta.get("annotations") or {})


def _must_leave_gpus(pod: Mapping[str, Any]) -> bool:
    """A repartition evicts the running GPU pods, but not the GPU operator's own agents (its
    MIG manager stops them itself)."""
    meta = pod.get("metadata") or {}
    if not _gpu_client(pod) or meta.get("deletionTimestamp"):
        return False
    return not _daemon(meta)


def _gpu_client(pod: Mapping[str, Any]) -> bool:
    """Whether a raw pod asks for a GPU, a GPU share or a MIG slice (it must move first)."""
    meta = pod.get("metadata") or {}
    where = f"pod {meta.get('namespace')}/{meta.get('name')}"
    try:
        spec = cast(objects.PodSpec, pod.get("spec") or {})
        return converting.request_of(spec, where).wants_gpu
    except errors.InvalidInputError:
        return True  # cannot read its requests: treat it as a GPU client, it moves first


def _already(obj: Mapping[str, Any], decision: str, now: float) -> str | None:
    """Why the decision needs no applying (already carried, or superseded), or None."""
    written = (obj.get("metadata") or {}).get("annotations") or {}
    if written.get(notes.DECISION_ID) == decision:
        return f"already applied (decision {decision})"
    last = written.get(notes.LAST_ACTION_TIME)
    if last:
        try:
            if converting.timestamp(last) > now + 1e-3:
                return f"superseded by a later kopilot decision ({last})"
        except ValueError:
            pass
    return None


def _trail(action: actions.Action, now: float, decision: str) -> dict[str, Any]:
    return {
        "metadata": {
            "annotations": {
                notes.LAST_ACTION: notes.clip(actions.describe(action)),
                notes.LAST_ACTION_TIME: converting.rfc3339(now, micro=True),
                notes.DECISION_ID: decision,
            }
        }
    }


def _message(action: actions.Action, decision: str) -> str:
    policy = f" [{action.policy}]" if action.policy else ""
    return f"{actions.describe(action)}{policy} (decision {decision})"


def _ref(obj: Mapping[str, Any], kind: str, api_version: str) -> events.ObjectRef:
    meta = obj.get("metadata") or {}
    return events.ObjectRef(
        kind=kind,
        name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace", "")),
        api_version=api_version,
        uid=str(meta.get("uid", "")),
    )


def _subject_ref(subject: str, workload_kind: str | None) -> events.ObjectRef | None:
    """`pod/ns/name`, `node/name`, `service/ns/name` (the managed workload), `deployment/ns/name`."""
    parts = subject.split("/")
    head = parts[0].lower()
    if head == "service" and len(parts) == 3:
        kind = workload_kind or "Deployment"
        return events.ObjectRef(kind=kind, namespace=parts[1], name=parts[2], api_version="apps/v1")
    if head not in SUBJECT_KINDS:
        return None
    kind, api_version = SUBJECT_KINDS[head]
    if kind == "Node" and len(parts) == 2:
        return events.ObjectRef(kind=kind, name=parts[1], api_version=api_version)
    if kind != "Node" and len(parts) == 3:
        return events.ObjectRef(
            kind=kind, namespace=parts[1], name=parts[2], api_version=api_version
        )
    return None
