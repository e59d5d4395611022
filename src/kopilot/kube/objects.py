"""Raw Kubernetes JSON at the boundary, as TypedDicts: only the fields kopilot reads or writes.

Objects come from the API server as JSON (`_preload_content=False`, then `json.loads`): the
official client's model classes are slow to build (a 10,000-pod list takes seconds) and kopilot
converts everything to its own frozen dataclasses (`kopilot.kube.converting`) anyway.
Every field is optional (`total=False`): the API server omits empty ones.
"""

from __future__ import annotations

from typing import Literal, TypedDict


class OwnerReference(TypedDict, total=False):
    apiVersion: str
    kind: str
    name: str
    uid: str
    controller: bool


class ObjectMeta(TypedDict, total=False):
    name: str
    namespace: str
    uid: str
    resourceVersion: str
    creationTimestamp: str
    labels: dict[str, str]
    annotations: dict[str, str]
    ownerReferences: list[OwnerReference]


class Taint(TypedDict, total=False):
    key: str
    value: str
    effect: str


class NodeSpec(TypedDict, total=False):
    unschedulable: bool
    taints: list[Taint]


class NodeCondition(TypedDict, total=False):
    type: str
    status: str
    reason: str
    message: str
    lastTransitionTime: str
    lastHeartbeatTime: str


class NodeStatus(TypedDict, total=False):
    capacity: dict[str, str]
    allocatable: dict[str, str]
    conditions: list[NodeCondition]


class Node(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: NodeSpec
    status: NodeStatus


class ResourceRequirements(TypedDict, total=False):
    requests: dict[str, str]
    limits: dict[str, str]


class Container(TypedDict, total=False):
    name: str
    image: str
    resources: ResourceRequirements


class PodSpec(TypedDict, total=False):
    nodeName: str
    schedulerName: str
    containers: list[Container]
    initContainers: list[Container]
    nodeSelector: dict[str, str]


class PodStatus(TypedDict, total=False):
    phase: str
    conditions: list[NodeCondition]


class Pod(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: PodSpec
    status: PodStatus


class PodTemplate(TypedDict, total=False):
    metadata: ObjectMeta
    spec: PodSpec


class WorkloadSpec(TypedDict, total=False):
    replicas: int
    template: PodTemplate


class WorkloadStatus(TypedDict, total=False):
    replicas: int
    readyReplicas: int
    availableReplicas: int
    observedGeneration: int


class Workload(TypedDict, total=False):
    """A Deployment or a StatefulSet (kopilot reads the same few fields of both)."""

    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: WorkloadSpec
    status: WorkloadStatus


class LeaseSpec(TypedDict, total=False):
    holderIdentity: str | None
    leaseDurationSeconds: int
    acquireTime: str | None
    renewTime: str | None
    leaseTransitions: int


class Lease(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: LeaseSpec


class ListMeta(TypedDict, total=False):
    resourceVersion: str
    # `continue` is a keyword: read it with .get("continue").


class ObjectList(TypedDict, total=False):
    metadata: ListMeta
    items: list[dict[str, object]]


WatchType = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"]


class WatchEvent(TypedDict):
    type: WatchType
    object: dict[str, object]


class Status(TypedDict, total=False):
    """The API's error body (`kind: Status`)."""

    kind: str
    code: int
    reason: str
    message: str
