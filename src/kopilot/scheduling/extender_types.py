"""The kube-scheduler extender wire types (`k8s.io/kube-scheduler/extender/v1`).

Requests are parsed with pydantic (unknown fields of the embedded v1.Pod / v1.Node are ignored);
responses are TypedDicts with the exact PascalCase keys kube-scheduler reads.
"""

from __future__ import annotations

from typing import TypedDict

from pydantic import BaseModel, ConfigDict, Field

Quantity = str | int | float


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class ObjectMeta(_Loose):
    name: str = ""
    namespace: str = "default"
    uid: str = ""
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class ResourceRequirements(_Loose):
    requests: dict[str, Quantity] | None = None
    limits: dict[str, Quantity] | None = None


class Container(_Loose):
    name: str = ""
    resources: ResourceRequirements | None = None


class PodSpec(_Loose):
    containers: list[Container] = Field(default_factory=list)
    init_containers: list[Container] | None = Field(default=None, alias="initContainers")
    node_name: str | None = Field(default=None, alias="nodeName")


class PodStatus(_Loose):
    phase: str | None = None


class Pod(_Loose):
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: PodSpec = Field(default_factory=PodSpec)
    status: PodStatus = Field(default_factory=PodStatus)


class NodeSpec(_Loose):
    unschedulable: bool | None = None


class NodeStatus(_Loose):
    allocatable: dict[str, Quantity] | None = None
    capacity: dict[str, Quantity] | None = None


class Node(_Loose):
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: NodeSpec = Field(default_factory=NodeSpec)
    status: NodeStatus = Field(default_factory=NodeStatus)


class NodeList(_Loose):
    items: list[Node] | None = None


class ExtenderArgs(_Loose):
    """`ExtenderArgs`: the pod, and the candidate nodes (full objects, or names when the
    extender is `nodeCacheCapable`)."""

    pod: Pod = Field(alias="Pod")
    nodes: NodeList | None = Field(default=None, alias="Nodes")
    node_names: list[str] | None = Field(default=None, alias="NodeNames")


class ExtenderBindingArgs(_Loose):
    pod_name: str = Field(alias="PodName")
    pod_namespace: str = Field(alias="PodNamespace")
    pod_uid: str = Field(alias="PodUID")
    node: str = Field(alias="Node")


class NodeListOut(TypedDict):
    items: list[dict[str, object]]


class ExtenderFilterResult(TypedDict):
    Nodes: NodeListOut | None
    NodeNames: list[str] | None
    FailedNodes: dict[str, str]
    FailedAndUnresolvableNodes: dict[str, str]
    Error: str


class HostPriority(TypedDict):
    Host: str
    Score: int


class ExtenderBindingResult(TypedDict):
    Error: str


MAX_EXTENDER_PRIORITY = 10
