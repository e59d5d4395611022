"""Kubernetes Events on the objects kopilot touches, so `kubectl describe` shows what and why.

An Event that cannot be written is logged and dropped: it never fails the action it describes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kopilot.kube import apis, converting, failures

log = logging.getLogger(__name__)

COMPONENT = "kopilot"
EVENT_MESSAGE_CHARS = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectRef:
    """The object an Event is about (`involvedObject`)."""

    kind: str
    name: str
    namespace: str = ""
    api_version: str = "v1"
    uid: str = ""

    @property
    def event_namespace(self) -> str:
        """Events of cluster-scoped objects (nodes) go to `default`, as the kubelet's do."""
        return self.namespace or "default"


class Recorder:
    """Writes core/v1 Events as `kopilot` (instance `identity`)."""

    def __init__(self, api: apis.Api, *, identity: str) -> None:
        self._api = api
        self.identity = identity
        self.failed = 0

    def record(
        self, ref: ObjectRef, *, reason: str, message: str, now: float, warning: bool = False
    ) -> bool:
        """Post one Event; False (and a log line) if the API refused it."""
        stamp = converting.rfc3339(now)
        involved = {"kind": ref.kind, "name": ref.name, "apiVersion": ref.api_version}
        if ref.namespace:
            involved["namespace"] = ref.namespace
        if ref.uid:
            involved["uid"] = ref.uid
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "generateName": f"{ref.name}.kopilot-",
                "namespace": ref.event_namespace,
            },
            "involvedObject": involved,
            "reason": reason,
            "message": message[:EVENT_MESSAGE_CHARS],
            "type": "Warning" if warning else "Normal",
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.identity[:128],
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            self._api.post(
                f"/api/v1/namespaces/{ref.event_namespace}/events", body, f"event on {ref.name}"
            )
        except failures.KubeError as e:
            self.failed += 1
            log.warning("could not record event %s on %s %s: %s", reason, ref.kind, ref.name, e)
            return False
        return True
