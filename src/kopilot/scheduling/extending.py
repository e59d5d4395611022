"""The kube-scheduler extender's logic: filter, prioritize and bind over kopilot's GPU state.

kube-scheduler already accounts CPU, memory and whole `nvidia.com/gpu` counts; what it cannot see
is *which* GPU each pod holds, how full each shared GPU is, and MIG slices. The extender keeps
that per-GPU state itself:

- **Nodes** come from the requests: with `nodeCacheCapable: false` every filter/prioritize call
  carries the candidate v1.Node objects and the inventory is refreshed from them (allocatable
  `nvidia.com/gpu`, `nvidia.com/mig-*`, labels `nvidia.com/gpu.product`, `nvidia.com/gpu.count`,
  `nvidia.com/gpu.replicas`, `kopilot.io/gpu-model`). With `nodeCacheCapable: true` only names
  come; the extender then uses the nodes it was given at start (`--nodes`, a v1.NodeList JSON) or
  learned from earlier calls, and reports a name it has never seen as a failed node.
- **Pods** come from bind: the extender is the binder, so it records every pod it binds, with its
  GPUs, and when it binds through the API its Binding carries the GPU indices (annotation
  `kopilot.io/gpu-indices`, which the API server copies onto the pod). The pod's demand is remembered from its filter/prioritize call
  (by UID), because bind only carries names. `forget` (POST /forget) releases a pod that ended.
- **`sync`** makes both what the API server says (level-triggered; `kopilot.kube.extender_sync`
  calls it from node and pod informers): nodes that went away are dropped, pods placed by
  someone else or before a restart are adopted (on their annotated GPUs when they have them),
  pods that ended or were deleted are released. A pod bound in the last `grace_s` seconds is
  kept even if the API does not show it on its node yet (the watch lags the Binding).

A pod's demand: container requests (limits when requests are absent) of `cpu`, `memory`,
`nvidia.com/gpu`, `kopilot.io/gpu-milli` (a share of one GPU, 1..999) and `nvidia.com/mig-*`;
the annotation `kopilot.io/gpu-models` (`V100M16|V100M32`) restricts the GPU model.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from kopilot.kits import clocks
from kopilot.model import cluster, errors, gpus, resources
from kopilot.scheduling import (
    demands,
    extender_encoding,
    extender_types,
    filters,
    fragmentation,
    framework,
    placing,
    profiles,
    quantities,
    state,
)

RESOURCE_GPU_MILLI = "kopilot.io/gpu-milli"
ANNOTATION_MODELS = cluster.ANNOTATION_GPU_MODELS
LABEL_MODEL = "kopilot.io/gpu-model"
UNKNOWN_NODE = "kopilot extender: node unknown (not in its node cache)"
LABEL_PRODUCT = "nvidia.com/gpu.product"
LABEL_COUNT = "nvidia.com/gpu.count"
MAX_REMEMBERED_PODS = 50_000
MAX_GPUS_PER_NODE = 32
"""More GPUs than any server holds (8 or 16): a node advertising more is failed, not built."""
MAX_NODES = 10_000
"""Nodes held from requests (twice the 5,000 Kubernetes supports in one cluster). Without an API
connection nothing says a node went away; past this, the node named least recently is
forgotten (it is learned again from the next request that carries it)."""

TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})
SYNC_GRACE_S = 60.0

Binder = Callable[[str, str, str, str, tuple[int, ...]], None]
"""`binder(namespace, name, uid, node, gpu_indices)` records the GPUs on the pod and creates the
Binding in the API server; raises on failure."""


def no_binding(namespace: str, name: str, uid: str, node: str, gpus: tuple[int, ...]) -> None:
    """A binder that only records (dry-run, tests): nothing is sent anywhere."""


def model_of(product: str) -> str:
    """kopilot's GPU model name for an `nvidia.com/gpu.product` label value."""
    p = product.upper()
    if "H100" in p:
        return gpus.H100_80GB.name
    if "A100" in p:
        return gpus.A100_80GB.name if "80GB" in p else gpus.A100_40GB.name
    return product


def node_from(obj: extender_types.Node) -> cluster.Node:
    """A kopilot Node from a v1.Node; raises InvalidInputError naming the node and the field or
    label it cannot read (the caller fails that node alone)."""
    name = obj.metadata.name
    if not name:
        raise errors.InvalidInputError("a node in Nodes.items has no metadata.name")
    alloc = obj.status.allocatable or obj.status.capacity or {}
    labels = obj.metadata.labels or {}
    where = f"node {name} allocatable"
    cpu = quantities.cpu_milli(alloc.get("cpu", 0), field=f"{where}.cpu")
    mem = quantities.memory_mib(alloc.get("memory", 0), field=f"{where}.memory")
    advertised = quantities.count(
        alloc.get(resources.RESOURCE_GPU, 0), field=f"{where}.{resources.RESOURCE_GPU}"
    )
    replicas = _replicas(name, labels) if advertised else 1
    model = labels.get(LABEL_MODEL) or model_of(labels.get(LABEL_PRODUCT, "GPU"))
    mig_counts = {
        key.removeprefix(resources.MIG_RESOURCE_PREFIX): quantities.count(v, field=f"{where}.{key}")
        for key, v in alloc.items()
        if key.startswith(resources.MIG_RESOURCE_PREFIX)
    }
    plain = advertised // replicas
    slices = sum(mig_counts.values())
    if plain > MAX_GPUS_PER_NODE or slices > MAX_GPUS_PER_NODE * gpus.COMPUTE_SLICES:
        raise errors.InvalidInputError(
            f"node {name}: advertises {plain} GPU(s) and {slices} MIG slice(s); kopilot holds up "
            f"to {MAX_GPUS_PER_NODE} GPUs a node (check {where} and the label "
            f"{state.LABEL_REPLICAS})"
        )
    gpu_list = [cluster.Gpu(index=i, model=model) for i in range(plain)]
    if slices:
        gpu_list.extend(_mig_gpus(name, model, mig_counts, start=plain))
    return cluster.Node(
        name=name,
        cpu_milli=cpu,
        memory_mib=mem,
        gpus=tuple(gpu_list),
        labels={k: v for k, v in labels.items() if k == state.LABEL_REPLICAS and advertised},
        unschedulable=bool(obj.spec.unschedulable),
    )


def _replicas(node: str, labels: dict[str, str]) -> int:
    """The node's time-slicing replicas label (`nvidia.com/gpu.replicas`), 1..1000."""
    raw = labels.get(state.LABEL_REPLICAS, "") or "1"
    if not raw.isdigit() or not 1 <= int(raw) <= resources.GPU_MILLI:
        raise errors.InvalidInputError(
            f"node {node}: label {state.LABEL_REPLICAS}={raw[:40]!r} is not a whole number "
            f"1..{resources.GPU_MILLI}; fix the label (the GPU device plugin's time-slicing "
            "config sets it)"
        )
    return int(raw)


def _mig_model(node: str, model_name: str, names: Iterable[str]) -> gpus.GpuModel:
    """The node's GPU model if it has every advertised profile, else the model those profile
    names describe (an H100 NVL's `1g.12gb`: see `gpus.model_for_profiles`)."""
    wanted = sorted(names)
    model = gpus.model_named(model_name)
    if model.mig_capable and all(p in {q.name for q in model.mig_profiles} for p in wanted):
        return model
    try:
        return gpus.model_for_profiles(wanted)
    except errors.InvalidLayoutError as e:
        raise errors.InvalidInputError(
            f"node {node}: allocatable {', '.join(resources.MIG_RESOURCE_PREFIX + p for p in wanted)}"
            f": {e}"
        ) from e


def _mig_gpus(
    node: str, model_name: str, counts: dict[str, int], *, start: int
) -> list[cluster.Gpu]:
    """GPUs whose layouts hold the advertised MIG slices (the device plugin does not say which
    slice is on which GPU; any packing that holds them is equivalent for placement)."""
    model = _mig_model(node, model_name, [p for p, c in counts.items() if c])
    pending = sorted(
        (p for p, c in counts.items() for _ in range(c)),
        key=lambda p: -model.profile(p).memory_slices,
    )
    out: list[cluster.Gpu] = []
    while pending:
        chosen: list[str] = []
        rest: list[str] = []
        for p in pending:
            if gpus.pack_profiles(model, [*chosen, p]) is not None:
                chosen.append(p)
            else:
                rest.append(p)
        layout = gpus.pack_profiles(model, chosen)
        if layout is None or not chosen:
            raise errors.InvalidInputError(f"node {node}: MIG slices {counts} fit no layout")
        out.append(cluster.Gpu(index=start + len(out), model=model.name, mig=layout))
        pending = rest
    return out


def _requests(
    key: str, container: extender_types.Container, kind: str = "container"
) -> dict[str, int]:
    """One container's requests (its limits where a request is absent) that the extender
    reads, in kopilot's units."""
    res = container.resources
    req = dict((res.limits or {}) if res else {})
    req.update((res.requests or {}) if res else {})
    out: dict[str, int] = {}
    for name, value in req.items():
        where = f"pod {key} {kind} {container.name or '?'} resources.{name}"
        if name == "cpu":
            out[name] = quantities.cpu_milli(value, field=where)
        elif name == "memory":
            out[name] = quantities.memory_mib(value, field=where)
        elif name in (resources.RESOURCE_GPU, RESOURCE_GPU_MILLI) or name.startswith(
            resources.MIG_RESOURCE_PREFIX
        ):
            out[name] = quantities.count(value, field=where)
    return out


def _add(into: dict[str, int], more: dict[str, int]) -> dict[str, int]:
    return {k: into.get(k, 0) + more.get(k, 0) for k in into.keys() | more.keys()}


def _most(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: max(a.get(k, 0), b.get(k, 0)) for k in a.keys() | b.keys()}


def effective_requests(key: str, spec: extender_types.PodSpec) -> dict[str, int]:
    """The pod's requests as Kubernetes computes them (`resourcehelper.PodRequests`): per
    resource, the larger of the app containers' sum and the largest init container. Init
    containers run one at a time, before the app; a sidecar (an init container with
    `restartPolicy: Always`) keeps running, so it adds to every init container after it and to
    the app containers."""
    apps: dict[str, int] = {}
    for c in spec.containers:
        apps = _add(apps, _requests(key, c))
    sidecars: dict[str, int] = {}
    inits: dict[str, int] = {}
    for c in spec.init_containers or ():
        own = _requests(key, c, "init container")
        if c.restart_policy == "Always":
            sidecars = _add(sidecars, own)
            inits = _most(inits, sidecars)
        else:
            inits = _most(inits, _add(own, sidecars))
    totals = _most(_add(apps, sidecars), inits)
    for name, amount in totals.items():
        if amount > quantities.MAX_UNITS:
            raise errors.InvalidInputError(
                f"pod {key}: its containers' resources.{name} add up to {amount}, over "
                f"kopilot's limit of {quantities.MAX_UNITS}"
            )
    return totals


def demand_from(pod: extender_types.Pod) -> demands.Demand:
    """A pod's demand from its containers' requests (init containers: the largest counts, see
    `effective_requests`)."""
    key = f"{pod.metadata.namespace}/{pod.metadata.name}"
    totals = effective_requests(key, pod.spec)
    mig = {
        k.removeprefix(resources.MIG_RESOURCE_PREFIX): v
        for k, v in totals.items()
        if k.startswith(resources.MIG_RESOURCE_PREFIX) and v
    }
    if len(mig) > 1:
        raise errors.InvalidInputError(f"pod {key}: asks for several MIG profiles {sorted(mig)}")
    share = totals.get(RESOURCE_GPU_MILLI, 0)
    if share >= resources.GPU_MILLI:
        raise errors.InvalidInputError(
            f"pod {key}: {RESOURCE_GPU_MILLI} is a share of one GPU (1..999), got {share}; "
            f"ask for whole GPUs with {resources.RESOURCE_GPU}"
        )
    spec = (pod.metadata.annotations or {}).get(ANNOTATION_MODELS, "")
    if len(spec) > 1024:
        raise errors.InvalidInputError(
            f"pod {key}: annotation {ANNOTATION_MODELS} is {len(spec)} characters; list the GPU "
            "models it may use (V100M16|V100M32), at most 1024 characters"
        )
    profile, count = next(iter(mig.items())) if mig else (None, 0)
    return demands.Demand(
        pod=key,
        cpu_milli=totals.get("cpu", 0),
        memory_mib=totals.get("memory", 0),
        gpus=totals.get(resources.RESOURCE_GPU, 0),
        gpu_milli=share,
        models=frozenset(m for m in spec.split("|") if m),
        mig_profile=profile,
        mig_count=count,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Filtered:
    """One pod's GPU filter verdicts on every node of one extender state, kept for the
    prioritize call that follows its filter call."""

    results: tuple[tuple[str, framework.FilterResult], ...]
    """Each filter plugin's name and verdict, in the profile's order."""
    passed: npt.NDArray[np.bool_]
    """Nodes passing every filter."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Bound:
    demand: demands.Demand
    node: str
    gpu_indices: tuple[int, ...]
    since: float = 0.0
    """When the extender bound (or adopted) it, by its clock."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncReport:
    """What one `sync` changed, and the objects it could not use (with the reason)."""

    nodes: int
    pods: int
    adopted: tuple[str, ...] = ()
    released: tuple[str, ...] = ()
    nodes_added: tuple[str, ...] = ()
    nodes_removed: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.adopted or self.released or self.nodes_added or self.nodes_removed)


@dataclass(frozen=True, slots=True)
class _Placed:
    key: str
    node: str
    demand: demands.Demand
    gpus: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _Ended:
    key: str


_PodView = _Placed | _Ended | str | None
"""What sync reads from a pod: placed, ended, unreadable (the reason), or not on a node yet."""


def _view(pod: extender_types.Pod) -> _PodView:
    key = f"{pod.metadata.namespace}/{pod.metadata.name}"
    if pod.status.phase in TERMINAL_PHASES:
        return _Ended(key)
    if not pod.spec.node_name:
        return None
    try:
        gpu_indices = cluster.gpu_indices_of(pod.metadata.annotations or {})
        return _Placed(key, pod.spec.node_name, demand_from(pod), gpu_indices)
    except errors.InvalidInputError as e:
        return str(e)


def _filter_result(
    args: extender_types.ExtenderArgs,
    passed: list[str],
    failed: dict[str, str],
    unresolvable: dict[str, str],
    nodes: Any,
) -> extender_types.ExtenderFilterResult:
    """`ExtenderFilterResult`: the passing nodes as `nodes` when the request carried objects,
    else as names."""
    return {
        "Nodes": nodes if args.with_objects else None,
        "NodeNames": None if args.with_objects else passed,
        "FailedNodes": failed,
        "FailedAndUnresolvableNodes": unresolvable,
        "Error": "",
    }


def _gpu_filters() -> tuple[framework.Filter, ...]:
    """kube-scheduler checks CPU, memory and schedulability itself; the extender checks GPUs."""
    return (filters.GpuModel(), filters.GpuFit(), filters.MigFit())


class Extender:
    """Thread-safe extender state: the node inventory, the bound pods, the profile."""

    def __init__(
        self,
        *,
        profile: str = "kopilot",
        nodes: Iterable[cluster.Node] = (),
        workload: fragmentation.Workload | None = None,
        binder: Binder = no_binding,
        rng: random.Random,
        clock: clocks.Clock | None = None,
        grace_s: float = SYNC_GRACE_S,
        max_nodes: int = MAX_NODES,
    ) -> None:
        self.profile_name = profile
        self.binder = binder
        self.rng = rng
        self.clock: clocks.Clock = clock or clocks.WallClock()
        self.grace_s = grace_s
        self.max_nodes = max_nodes
        self._pods_read: dict[int, tuple[extender_types.Pod, _PodView]] = {}
        self._refused: dict[str, tuple[_Placed, str]] = {}
        """Pods the sync could not account (over capacity), with the reason, until they change."""
        self.problems: OrderedDict[str, str] = OrderedDict()
        """Pods the last rebuild could not place back (key -> reason), for `/healthz` and logs."""
        self.lock = threading.Lock()
        self.nodes: dict[str, cluster.Node] = {n.name: n for n in nodes}
        self._raw: OrderedDict[str, extender_types.Node] = OrderedDict()
        """The v1.Node last read for each node, least recently named first."""
        self.broken: dict[str, str] = {}
        """Nodes that could not be read (name -> the reason, naming the field or label): each
        is a failed node of every filter until it changes; the other nodes are judged."""
        self._epoch = 0
        """Bumped whenever the state or the profile changes: a `_Filtered` is valid for one."""
        self._filtered: OrderedDict[tuple[str, demands.Demand, int], _Filtered] = OrderedDict()
        self.bound: dict[str, _Bound] = {}
        self.seen: OrderedDict[str, demands.Demand] = OrderedDict()
        self.shapes: list[demands.Demand] = []
        self.fixed_workload = workload
        self._profile: profiles.Profile | None = None
        self._state: state.ClusterState | None = None
        # Derived from the current state, reset whenever it is rebuilt: its node names as an
        # array (fancy-indexable) and the last few request name lists resolved against it.
        self._names: npt.NDArray[np.object_] = np.array([], dtype=object)
        self._resolved: OrderedDict[tuple[str, ...], npt.NDArray[np.int64]] = OrderedDict()
        self._encoded = extender_encoding.Priorities()
        self._encoded_nodes = extender_encoding.NodeItems()

    # ---- inventory -----------------------------------------------------------------------

    def learn(self, items: Iterable[extender_types.Node]) -> list[str]:
        """Take these v1.Nodes into the node cache (`--nodes` at start); returns the reason for
        each node that could not be read (those are failed by every filter)."""
        items = list(items)
        with self.lock:
            self._learn(items)
            named = dict.fromkeys(o.metadata.name for o in items)
            return [self.broken[n] for n in named if n in self.broken]

    def _learn(self, items: list[extender_types.Node]) -> None:
        changed = False
        for obj in items:
            name = obj.metadata.name
            # a Node struct holds only the fields node_from reads: equal means unchanged
            if self._raw.get(name) == obj:
                self._raw.move_to_end(name)
                continue  # unchanged since the last request: skip re-parsing quantities
            try:
                node = node_from(obj)
            except errors.InvalidInputError as e:
                if not name:
                    raise  # a node with no name cannot be failed by name: the body is malformed
                self.broken[name] = str(e)
                changed |= self.nodes.pop(name, None) is not None
            else:
                self.broken.pop(name, None)
                if self.nodes.get(name) != node:
                    self.nodes[name] = node
                    changed = True
            self._raw[name] = obj
            self._raw.move_to_end(name)
        while len(self._raw) > self.max_nodes:
            name, _ = self._raw.popitem(last=False)
            self.broken.pop(name, None)
            changed |= self.nodes.pop(name, None) is not None
        if changed or self._state is None:
            self._rebuild()

    def _rebuild(self) -> None:
        self._epoch += 1
        self._resolved.clear()
        if not self.nodes:
            self._state = None
            self._names = np.array([], dtype=object)
            return
        fresh = state.ClusterState(self.nodes.values())
        self.problems.clear()
        for key, b in list(self.bound.items()):
            if b.node not in fresh.index:
                del self.bound[key]
                continue
            why = self._account(fresh, key, b)
            if why is not None:
                self.problems[key] = why
        self._state = fresh
        self._names = np.array(fresh.names, dtype=object)

    def _account(self, cl: state.ClusterState, key: str, b: _Bound) -> str | None:
        """Put a bound pod into the state, on its recorded GPUs or else any with room; a pod
        that does not fit (over capacity: another scheduler's doing) is dropped: the reason."""
        node = cl.index[b.node]
        try:
            cl.assign(state.occupy(cl, b.demand, node, b.gpu_indices))
        except errors.InvalidInputError:
            try:
                cl.assign(state.occupy(cl, b.demand, node))
            except errors.InvalidInputError as e:
                del self.bound[key]
                return f"not accounted on {b.node}: {e}"
        return None

    def _profile_for(self) -> profiles.Profile:
        if self._profile is None:
            workload = self.fixed_workload
            if workload is None and self.profile_name in ("fgd", "kopilot"):
                workload = fragmentation.workload_from(self.shapes or [demands.Demand(pod="-")])
            base = profiles.named(self.profile_name, workload=workload)
            self._profile = profiles.Profile(
                name=base.name,
                description=base.description,
                filters=_gpu_filters(),
                scores=base.scores,
                picker=base.picker,
            )
        return self._profile

    def _remember(self, uid: str, demand: demands.Demand) -> None:
        if uid in self.seen:
            return
        self.seen[uid] = demand
        while len(self.seen) > MAX_REMEMBERED_PODS:
            self.seen.popitem(last=False)
        self.shapes.append(demand)
        n = len(self.shapes)
        if self.fixed_workload is None and (n & (n - 1)) == 0:  # 1, 2, 4, 8, ... pods seen
            self._profile = None
            self._epoch += 1
        if n > 4 * MAX_REMEMBERED_PODS:
            del self.shapes[: n // 2]

    # ---- verbs ---------------------------------------------------------------------------

    def _read(
        self, args: extender_types.ExtenderArgs | extender_types.NamedArgs, *, refresh: bool
    ) -> tuple[str, demands.Demand, list[str]]:
        """The pod's key (UID) and demand and the request's node names, after learning its node
        objects (with `refresh=False`, only the nodes not known yet: prioritize follows filter,
        which has just read them)."""
        demand = demand_from(args.pod)
        if isinstance(args, extender_types.ExtenderArgs) and args.nodes is not None:
            items = args.nodes.items or []
            self._learn(
                items if refresh else [n for n in items if n.metadata.name not in self.nodes]
            )
        uid = args.pod.metadata.uid or demand.pod
        self._remember(uid, demand)
        return uid, demand, args.names()

    def knows(self, names: Iterable[str]) -> bool:
        """True when every node named is in the extender's node cache."""
        return all(map(self.nodes.__contains__, names))

    def _filters(self, cl: state.ClusterState, uid: str, demand: demands.Demand) -> _Filtered:
        """The pod's filter verdicts on this state; memoised, because kube-scheduler asks
        prioritize about the nodes filter just passed, for the same pod and state."""
        key = (uid, demand, self._epoch)
        hit = self._filtered.get(key)
        if hit is not None:
            return hit
        results = tuple((p.name, p.filter(cl, demand)) for p in self._profile_for().filters)
        passed = np.ones(len(cl), dtype=np.bool_)
        for _, result in results:
            passed &= result.passed
        verdict = _Filtered(results=results, passed=passed)
        self._filtered[key] = verdict
        while len(self._filtered) > 64:
            self._filtered.popitem(last=False)
        return verdict

    def _resolve(self, cl: state.ClusterState, names: list[str]) -> npt.NDArray[np.int64]:
        """Each request name's node index in the state, -1 for a node it does not know.
        kube-scheduler sends the same candidate list call after call, so the last few
        resolutions are kept (until the state is rebuilt)."""
        key = tuple(names)
        hit = self._resolved.get(key)
        if hit is not None:
            return hit
        at = np.fromiter(map(cl.index.get, names, itertools.repeat(-1)), np.int64, len(names))
        self._resolved[key] = at
        while len(self._resolved) > 8:
            self._resolved.popitem(last=False)
        return at

    def _filter(
        self, uid: str, demand: demands.Demand, names: list[str]
    ) -> tuple[list[str], dict[str, str], dict[str, str]]:
        """The names passing the GPU filters, the failed ones and the unresolvable ones (with
        the first filter that rejected each, or unknown to the extender)."""
        cl = self._state
        if cl is None:
            return [], self._broken_in(names), self._unknown(names)
        at = self._resolve(cl, names)
        missing = [names[i] for i in np.flatnonzero(at < 0)]
        unresolvable = self._unknown(missing)
        alive = np.zeros(len(cl), dtype=np.bool_)
        alive[at[at >= 0]] = True
        failed = self._broken_in(missing)
        for plugin, result in self._filters(cl, uid, demand).results:
            rejected = np.flatnonzero(alive & ~result.passed)
            if rejected.size:
                target = unresolvable if result.unresolvable else failed
                target.update(
                    dict.fromkeys(self._names[rejected].tolist(), f"{plugin}: {result.reason}")
                )
            alive &= result.passed
        passed: list[str] = self._names[np.flatnonzero(alive)].tolist()
        return passed, failed, unresolvable

    def _broken_in(self, names: list[str]) -> dict[str, str]:
        """The named nodes that could not be read, with the reason (FailedNodes: the node may
        be fixed, so kube-scheduler may try it again for this pod later)."""
        broken = self.broken
        return {n: f"kopilot extender: {broken[n]}" for n in names if n in broken}

    def _unknown(self, names: list[str]) -> dict[str, str]:
        broken = self.broken
        return dict.fromkeys((n for n in names if n not in broken), UNKNOWN_NODE)

    def _scores(
        self, uid: str, demand: demands.Demand, names: list[str]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_], framework.FloatArray]:
        """The request names' node indices (-1: unknown), the nodes scored (named and passing
        every GPU filter) and the profile's weighted score of each (0 elsewhere), normalised
        over the nodes scored as the framework does."""
        cl = self._state
        if cl is None:
            return np.full(len(names), -1, dtype=np.int64), np.zeros(0, np.bool_), np.zeros(0)
        at = self._resolve(cl, names)
        alive = np.zeros(len(cl), dtype=np.bool_)
        alive[at[at >= 0]] = True
        alive &= self._filters(cl, uid, demand).passed
        total = np.zeros(len(cl), dtype=np.float64)
        if alive.any():
            for scorer, weight in self._profile_for().scores:
                raw = scorer.score(cl, demand, alive, self.rng)
                total += weight * framework.normalise(raw, alive)
        return at, alive, total

    def scores(self, args: extender_types.ExtenderArgs) -> dict[str, float]:
        """The profile's weighted score (0..100 x the weight sum) of each request node passing
        the GPU filters, as prioritize sees them."""
        with self.lock:
            uid, demand, names = self._read(args, refresh=False)
            at, alive, total = self._scores(uid, demand, names)
        return {
            n: float(total[i])
            for n, i in zip(names, at.tolist(), strict=True)
            if i >= 0 and alive[i]
        }

    def filter(self, args: extender_types.ExtenderArgs) -> extender_types.ExtenderFilterResult:
        passed, failed, unresolvable = self._filter_args(args)
        nodes: extender_types.NodeListOut = {"items": [{"metadata": {"name": n}} for n in passed]}
        return _filter_result(args, passed, failed, unresolvable, nodes)

    def filter_json(self, args: extender_types.ExtenderArgs) -> bytes:
        """`filter`'s answer as JSON; the passing v1.Node entries (name only, all kube-scheduler
        reads of them) are encoded once per node name."""
        passed, failed, unresolvable = self._filter_args(args)
        nodes = orjson.Fragment(self._encoded_nodes.encode(passed))
        return orjson.dumps(_filter_result(args, passed, failed, unresolvable, nodes))

    def _filter_args(
        self, args: extender_types.ExtenderArgs
    ) -> tuple[list[str], dict[str, str], dict[str, str]]:
        with self.lock:
            uid, demand, names = self._read(args, refresh=True)
            return self._filter(uid, demand, names)

    def _priorities(
        self, args: extender_types.ExtenderArgs | extender_types.NamedArgs
    ) -> tuple[list[str], list[int]]:
        """The request's node names and their priorities 0..MAX_EXTENDER_PRIORITY: the weighted
        score over the weight sum, scaled and rounded half to even; the best nodes get the
        maximum; a node that fails the filters (or is unknown) gets 0."""
        with self.lock:
            uid, demand, names = self._read(args, refresh=False)
            at, alive, total = self._scores(uid, demand, names)
            weight_sum = sum(w for _, w in self._profile_for().scores) or 1.0
        if not alive.any():
            return names, [0] * len(names)
        # One array pass instead of a Python loop per node: numpy rounds half to even, as round().
        known = at >= 0
        scored = np.zeros(len(names), dtype=np.bool_)
        scored[known] = alive[at[known]]
        values = np.where(scored, total[np.where(known, at, 0)], 0.0)
        scaled = values / (100.0 * weight_sum) * extender_types.MAX_EXTENDER_PRIORITY
        top = float(total[alive].max())
        if top > 0:
            scaled[scored & (values >= top - 1e-9)] = extender_types.MAX_EXTENDER_PRIORITY
        ints = np.clip(np.round(scaled), 0, extender_types.MAX_EXTENDER_PRIORITY).astype(np.int64)
        return names, ints.tolist()

    def prioritize(
        self, args: extender_types.ExtenderArgs | extender_types.NamedArgs
    ) -> list[extender_types.HostPriority]:
        names, ints = self._priorities(args)
        return [{"Host": n, "Score": s} for n, s in zip(names, ints, strict=True)]

    def prioritize_json(
        self, args: extender_types.ExtenderArgs | extender_types.NamedArgs
    ) -> bytes:
        """`prioritize`'s answer as JSON, from entries encoded once per node name."""
        names, ints = self._priorities(args)
        return self._encoded.encode(names, ints)

    def bind(
        self, args: extender_types.ExtenderBindingArgs
    ) -> extender_types.ExtenderBindingResult:
        key = f"{args.pod_namespace}/{args.pod_name}"
        with self.lock:
            demand = self.seen.get(args.pod_uid)
            if demand is None:
                return {
                    "Error": f"kopilot extender: pod {key} (uid {args.pod_uid}) was never "
                    "filtered by this extender, so its GPU demand is unknown"
                }
            cl = self._state
            if cl is None or args.node not in cl.index:
                return {"Error": f"kopilot extender: node {args.node} unknown"}
            if key in cl.allocations:
                return {"Error": f"kopilot extender: pod {key} is already bound"}
            node = cl.index[args.node]
            check = placing.decide(cl, demand, self._only(node), self.rng)
            if not isinstance(check, framework.Placement):
                return {
                    "Error": f"kopilot extender: pod {key} no longer fits on {args.node}: "
                    + check.reason()
                }
            allocation = check.allocation
            cl.assign(allocation)
            self._epoch += 1
            self.bound[key] = _Bound(
                demand=demand,
                node=args.node,
                gpu_indices=allocation.gpu_indices,
                since=self.clock.now(),
            )
        try:
            self.binder(
                args.pod_namespace, args.pod_name, args.pod_uid, args.node, allocation.gpu_indices
            )
        except Exception as e:  # the API call failed: give the GPUs back, report the error
            self.forget(key)
            return {"Error": f"kopilot extender: binding {key} to {args.node} failed: {e}"}
        return {"Error": ""}

    def _only(self, node: int) -> profiles.Profile:
        base = self._profile_for()
        only = _OnlyNode(node)
        return profiles.Profile(
            name=base.name,
            description=base.description,
            filters=(only, *base.filters),
            scores=(),
            picker=base.picker,
        )

    def status(self) -> dict[str, int]:
        """How many nodes and pods the extender holds, and pods it could not account. Read
        without the lock (each count is one atomic read): the health probe must not wait for
        a request that holds it."""
        return {
            "nodes": len(self.nodes),
            "pods": len(self.bound),
            "problems": len(self.problems) + len(self._refused),
            "broken_nodes": len(self.broken),
        }

    def forget(self, pod_key: str) -> bool:
        """Release a pod the extender bound (it ended or was deleted)."""
        with self.lock:
            self.bound.pop(pod_key, None)
            released = self._state is not None and self._state.release(pod_key) is not None
            self._epoch += released
            return released

    def sync(
        self, nodes: Iterable[extender_types.Node], pods: Iterable[extender_types.Pod]
    ) -> SyncReport:
        """Make the node inventory and the bound pods what the API server says.

        `nodes` and `pods` are complete lists (an informer's contents). Nodes not in `nodes` are
        dropped (with their pods); pods on a node that the extender does not hold are adopted;
        pods it holds that ended, moved or are gone are released, except those it bound less
        than `grace_s` ago and that the API does not show anywhere else yet. A node or pod that
        cannot be read is skipped with its reason in the report; the rest still syncs.
        """
        problems: list[str] = []
        placed: dict[str, _Placed] = {}
        ended: set[str] = set()
        # An informer hands over the same object until the pod changes: read each object once.
        read: dict[int, tuple[extender_types.Pod, _PodView]] = {}
        for pod in pods:
            known = self._pods_read.get(id(pod))
            view = known[1] if known is not None and known[0] is pod else _view(pod)
            read[id(pod)] = (pod, view)
            if isinstance(view, _Placed):
                placed[view.key] = view
            elif isinstance(view, _Ended):
                ended.add(view.key)
            elif view is not None:
                problems.append(view)
        self._pods_read = read
        now = self.clock.now()
        with self.lock:
            fresh: dict[str, cluster.Node] = {}
            raw: OrderedDict[str, extender_types.Node] = OrderedDict()
            broken: dict[str, str] = {}
            for obj in nodes:
                name = obj.metadata.name
                if self._raw.get(name) == obj and (name in self.nodes or name in self.broken):
                    raw[name] = obj  # unchanged: no re-parse
                    if name in self.nodes:
                        fresh[name] = self.nodes[name]
                    else:
                        broken[name] = self.broken[name]
                    continue
                raw[name] = obj
                try:
                    fresh[name] = node_from(obj)
                except errors.InvalidInputError as e:
                    broken[name] = str(e)
            self.broken = broken
            problems.extend(broken.values())
            added = tuple(sorted(fresh.keys() - self.nodes.keys()))
            removed = tuple(sorted(self.nodes.keys() - fresh.keys()))
            changed = bool(added or removed) or any(
                self.nodes[n] is not node and self.nodes[n] != node for n, node in fresh.items()
            )
            released: list[str] = []
            for key, b in list(self.bound.items()):
                where = placed.get(key)
                if where is not None and where.node == b.node:
                    continue
                young = now - b.since < self.grace_s
                if where is None and key not in ended and young:
                    continue  # just bound by us: the API's view has not caught up yet
                del self.bound[key]
                released.append(key)
            adopted: list[str] = []
            for key, view in placed.items():
                if key in self.bound or self._refused.get(key, (None,))[0] is view:
                    continue  # held already, or refused before and unchanged since
                if view.node not in fresh:
                    problems.append(f"pod {key}: on node {view.node}, unknown to the extender")
                    continue
                self.bound[key] = _Bound(
                    demand=view.demand, node=view.node, gpu_indices=view.gpus, since=now
                )
                adopted.append(key)
            self._refused = {k: v for k, v in self._refused.items() if placed.get(k) is v[0]}
            self._raw = raw
            if changed or self._state is None:
                self.nodes = fresh
                self._rebuild()
            else:  # same nodes: account the difference, no rebuild of every pod
                cl = self._state
                self._epoch += bool(released or adopted)  # kept filter verdicts are stale
                for key in released:
                    cl.release(key)
                for key in adopted:
                    why = self._account(cl, key, self.bound[key])
                    if why is not None:
                        self.problems[key] = why
            for key in adopted:  # either way, a pod that did not fit has its reason in problems
                if key not in self.bound:
                    self._refused[key] = (placed[key], self.problems.pop(key, "not accounted"))
            adopted = [k for k in adopted if k in self.bound]
            problems.extend(f"pod {k}: {why}" for k, why in self.problems.items())
            problems.extend(f"pod {k}: {why}" for k, (_, why) in self._refused.items())
        return SyncReport(
            nodes=len(fresh),
            pods=len(read),
            adopted=tuple(sorted(adopted)),
            released=tuple(sorted(released)),
            nodes_added=added,
            nodes_removed=removed,
            problems=tuple(problems),
        )


@dataclass(frozen=True, slots=True)
class _OnlyNode:
    node: int
    name: str = "BindTarget"

    def filter(
        self, cluster_state: state.ClusterState, demand: demands.Demand
    ) -> framework.FilterResult:
        passed = np.zeros(len(cluster_state), dtype=np.bool_)
        passed[self.node] = True
        return framework.FilterResult(passed=passed, reason="not the bind target")
