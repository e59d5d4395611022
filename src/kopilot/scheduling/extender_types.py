"""The kube-scheduler extender wire types (`k8s.io/kube-scheduler/extender/v1`).

Requests are decoded with msgspec into frozen structs holding only the fields the extender reads
(every other field of the embedded v1.Pod / v1.Node is skipped unread). A request with
`nodeCacheCapable: false` carries every candidate v1.Node, ~0.5 MB for 1,000 nodes, twice per
pod: msgspec decodes it in about a quarter of the time pydantic took to validate it. Responses
are TypedDicts with the exact PascalCase keys kube-scheduler reads.

`decode(raw, Type)` and `convert(obj, Type)` raise `MalformedError` with the first problem and
where it is, e.g. `Expected `str`, got `int` - at `$.Pod.metadata.name``.
"""

from __future__ import annotations

from typing import Annotated, Generic, TypedDict, TypeVar

import msgspec

from kopilot.model import errors

Quantity = str | int | float
T = TypeVar("T")

Name = Annotated[str, msgspec.Meta(max_length=253)]
"""A Kubernetes object name (a DNS subdomain: at most 253 characters). A longer one is a
malformed body, refused before anything is kept about it."""
Namespace = Annotated[str, msgspec.Meta(max_length=63)]
Uid = Annotated[str, msgspec.Meta(max_length=128)]


class MalformedError(errors.InvalidInputError):
    """A body that is not JSON, or not of the expected shape (permanent: resending fails too)."""


class _Loose(msgspec.Struct, frozen=True, kw_only=True):
    """Unknown fields are ignored, as the extender reads a few fields of large objects."""


class ObjectMeta(_Loose, frozen=True):
    name: Name = ""
    namespace: Namespace = "default"
    uid: Uid = ""
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class ResourceRequirements(_Loose, frozen=True):
    requests: dict[str, Quantity] | None = None
    limits: dict[str, Quantity] | None = None


class Container(_Loose, frozen=True):
    name: str = ""
    resources: ResourceRequirements | None = None
    restart_policy: str | None = msgspec.field(default=None, name="restartPolicy")
    """`Always` on an init container makes it a sidecar (Kubernetes 1.29+)."""


class PodSpec(_Loose, frozen=True):
    containers: list[Container] = msgspec.field(default_factory=list)
    init_containers: list[Container] | None = msgspec.field(default=None, name="initContainers")
    node_name: str | None = msgspec.field(default=None, name="nodeName")


class PodStatus(_Loose, frozen=True):
    phase: str | None = None


class Pod(_Loose, frozen=True):
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: PodSpec = msgspec.field(default_factory=PodSpec)
    status: PodStatus = msgspec.field(default_factory=PodStatus)


class NodeMeta(_Loose, frozen=True):
    """A v1.Node's metadata: its name and labels (its annotations are long and unread)."""

    name: Name = ""
    labels: dict[str, str] | None = None


class NodeSpec(_Loose, frozen=True):
    unschedulable: bool | None = None


class NodeStatus(_Loose, frozen=True):
    allocatable: dict[str, Quantity] | None = None
    capacity: dict[str, Quantity] | None = None


class Node(_Loose, frozen=True):
    metadata: NodeMeta = msgspec.field(default_factory=NodeMeta)
    spec: NodeSpec = msgspec.field(default_factory=NodeSpec)
    status: NodeStatus = msgspec.field(default_factory=NodeStatus)


class NodeList(_Loose, frozen=True):
    items: list[Node] | None = None


class NameOnly(_Loose, frozen=True):
    name: Name = ""


class NamedNode(_Loose, frozen=True):
    metadata: NameOnly = msgspec.field(default_factory=NameOnly)


class NamedNodeList(_Loose, frozen=True):
    items: list[NamedNode] | None = None


Nodes = TypeVar("Nodes", NodeList, NamedNodeList)


class _Args(_Loose, Generic[Nodes], frozen=True):
    """The pod, and the candidate nodes: objects (`Nodes`) or names (`NodeNames`)."""

    pod: Pod = msgspec.field(name="Pod")
    nodes: Nodes | None = msgspec.field(default=None, name="Nodes")
    node_names: list[Name] | None = msgspec.field(default=None, name="NodeNames")

    @property
    def with_objects(self) -> bool:
        """True when the candidates came as v1.Node objects (`nodeCacheCapable: false`)."""
        return self.nodes is not None and self.nodes.items is not None

    def names(self) -> list[str]:
        if self.nodes is not None and self.nodes.items is not None:
            return [n.metadata.name for n in self.nodes.items]
        return list(self.node_names or [])


class ExtenderArgs(_Args[NodeList], frozen=True):
    """`ExtenderArgs`: the pod, and the candidate nodes (full objects, or names when the
    extender is `nodeCacheCapable`)."""


class NamedArgs(_Args[NamedNodeList], frozen=True):
    """`ExtenderArgs` read for the names of its v1.Node objects only: what prioritize needs
    about nodes that its filter call has just read in full (a fifth of the decoding time)."""


class ExtenderBindingArgs(_Loose, frozen=True):
    pod_name: Name = msgspec.field(name="PodName")
    pod_namespace: Namespace = msgspec.field(name="PodNamespace")
    pod_uid: Uid = msgspec.field(name="PodUID")
    node: Name = msgspec.field(name="Node")


def decode(raw: bytes, kind: type[T]) -> T:
    """`raw` JSON as a `kind` (one of the request types above); raises MalformedError."""
    try:
        return msgspec.json.decode(raw, type=kind)
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        raise MalformedError(str(e)) from e


def convert(obj: object, kind: type[T]) -> T:
    """Already-parsed JSON (dicts, lists, ...) as a `kind`; raises MalformedError."""
    try:
        return msgspec.convert(obj, kind)
    except msgspec.ValidationError as e:
        raise MalformedError(str(e)) from e


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
