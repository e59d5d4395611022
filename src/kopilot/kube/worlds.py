"""KubeWorld: the live World. Snapshots from list+watch caches; actions through the API.

    world = KubeWorld(api, clock=clocks.WallClock(), demand=source)
    with world:                       # starts the caches, waits until they are synced
        report = cycles.run_cycle(world, slots, gov, log, clock.now())

- Nodes, pods, Deployments and StatefulSets come from informer caches (`kopilot.kube.caches`),
  converted once per change; a snapshot copies them, so it costs no API call.
- Services are the workloads a `ModelService` (kopilot.io/v1alpha1, `kopilot.kube.modelservices`)
  targets, when the CRD is installed, and the workloads annotated `kopilot.io/managed: "true"`
  (`kopilot.kube.notes`); a workload with bad annotations is left out and named in `problems`;
  a ModelService kopilot cannot use is left out, named in `problems`, and its `Ready` condition
  says why (written by the replica that may act, only when it changes).
- Demand: for each service with a `kopilot.io/demand-query`, a range query over the last
  `demand_history_s` through the `DemandSource` (Prometheus in production). A failing query leaves
  the service without history, so the policies' data-quality gate falls back, and says why.
- Signals: the health streams (`kopilot.metrics.signals`, docs/signals.md), one read per snapshot
  through the `SignalSource`; its streams become `snapshot.metrics`. A reading that cannot be
  trusted (Prometheus unreachable, stale, skewed), or no source at all, marks the snapshot
  `blind` for metrics, so the families that need them do not act; dropped series are `problems`.
- `apply` runs only while `may_act()` says so (the leader-election fence), and writes the
  decision id of each action (`kopilot.kube.resuming`) onto the object it changes.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self, cast

from kopilot.kits import clocks
from kopilot.kube import (
    apis,
    applying,
    caches,
    converting,
    events,
    failures,
    modelservices,
    objects,
    resuming,
    retrying,
)
from kopilot.loop import worlds
from kopilot.model import actions, cluster, errors, series

log = logging.getLogger(__name__)


class DemandSource(Protocol):
    """Where request-rate history comes from (Prometheus, or a replayed curve in tests)."""

    def demand(self, query: str, *, start: float, end: float, step: float) -> series.Series:
        """Samples of `query` (req/s) over [start, end] every `step` s; raises KopilotError."""
        ...


class SignalReading(Protocol):
    """What a signal source read: streams by key, series dropped (with why), and whether the
    whole reading is untrustworthy (`blind`, with why)."""

    @property
    def streams(self) -> Mapping[str, series.Series]: ...

    @property
    def dropped(self) -> tuple[str, ...]: ...

    @property
    def blind(self) -> str | None: ...


class SignalSource(Protocol):
    """Where the health streams come from (`kopilot.metrics.signals.Reader` in production)."""

    def read(self, now: float) -> SignalReading:
        """Every stream at `now`; faults are reported in the reading, not raised."""
        ...


CRD_RECHECK_S = 60.0
"""How often a KubeWorld without the ModelService CRD asks whether it has been installed."""


class NotSyncedError(errors.TemporaryError):
    """The caches have not finished their first list yet: no snapshot to give."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    identity: str = "kopilot"
    """Who acts: the Events' reporting instance (pod name, in a cluster)."""
    demand_history_s: float = 3600.0
    demand_step_s: float = 15.0
    sync_timeout_s: float = 60.0
    watch_timeout_s: int = 300
    page_size: int = 500
    namespaces: frozenset[str] | None = None
    """Manage only the services in these namespaces (None: every namespace). Nodes and pods
    are always seen cluster-wide: placement and node health need the whole picture."""


Managed = tuple[converting.WorkloadRef, cluster.ModelService]


def _workload(raw: dict[str, Any]) -> converting.WorkloadInfo:
    return converting.workload_info(cast(objects.Workload, raw))


def _model_service(raw: dict[str, Any]) -> modelservices.Spec:
    return modelservices.spec_of(cast(modelservices.ModelService, raw))


def _node(raw: dict[str, Any]) -> converting.NodeInfo:
    return converting.node_info(cast(objects.Node, raw))


def _pod(raw: dict[str, Any]) -> cluster.Pod:
    return converting.pod_of(cast(objects.Pod, raw))


class KubeWorld:
    """A live cluster as a World (see the module docstring)."""

    def __init__(
        self,
        api: apis.Api,
        *,
        clock: clocks.Clock,
        demand: DemandSource | None = None,
        settings: Settings = Settings(),
        may_act: Callable[[], bool] | None = None,
        signals: SignalSource | None = None,
    ) -> None:
        self.api = api
        self.settings = settings
        self._clock = clock
        self._demand = demand
        self._signals = signals
        self.may_act = may_act
        self.problems: tuple[str, ...] = ()
        """What the last snapshot had to leave out, and why."""
        common: dict[str, Any] = {
            "api": api,
            "clock": clock,
            "page_size": settings.page_size,
            "watch_timeout_s": settings.watch_timeout_s,
        }
        self.nodes = caches.Informer[converting.NodeInfo](
            kind="Node",
            path=caches.NODES,
            transform=_node,
            **common,
        )
        self.pods = caches.Informer[cluster.Pod](
            kind="Pod",
            path=caches.PODS,
            transform=_pod,
            **common,
        )
        self.deployments = caches.Informer[converting.WorkloadInfo](
            kind="Deployment", path=caches.DEPLOYMENTS, transform=_workload, **common
        )
        self.statefulsets = caches.Informer[converting.WorkloadInfo](
            kind="StatefulSet", path=caches.STATEFULSETS, transform=_workload, **common
        )
        self.modelservices = caches.Informer[modelservices.Spec](
            kind="ModelService", path=modelservices.PATH, transform=_model_service, **common
        )
        self.informers: tuple[caches.Informer[Any], ...] = (
            self.nodes,
            self.pods,
            self.deployments,
            self.statefulsets,
        )
        self.crd_served: bool | None = None
        """Whether the API serves kopilot.io/v1alpha1 ModelServices (known once started)."""
        self._crd_checked_at = -math.inf
        self.verdicts: dict[str, modelservices.Verdict] = {}
        """The last snapshot's verdict on every ModelService, by `namespace/name`."""
        self._actuator = applying.Actuator(api, events.Recorder(api, identity=settings.identity))

    @classmethod
    def connect(
        cls,
        api_client: Any,
        *,
        clock: clocks.Clock,
        rng: random.Random,
        demand: DemandSource | None = None,
        settings: Settings = Settings(),
        may_act: Callable[[], bool] | None = None,
        backoff: retrying.Backoff | None = None,
        signals: SignalSource | None = None,
    ) -> KubeWorld:
        """A KubeWorld over an official-client `ApiClient` (from a kubeconfig or in-cluster)."""
        api = apis.Api(api_client, retrying.Retrier(clock, rng, backoff or retrying.Backoff()))
        return cls(
            api, clock=clock, demand=demand, settings=settings, may_act=may_act, signals=signals
        )

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> None:
        if self.crd_served is None:
            self.crd_served = self._serves_crd()
            if self.crd_served:
                self.informers = (*self.informers, self.modelservices)
        for informer in self.informers:
            informer.start()

    def _serves_crd(self) -> bool:
        """Whether the ModelService CRD is installed; without it (or while the API cannot say)
        kopilot reads annotations only, and asks again every `CRD_RECHECK_S`."""
        self._crd_checked_at = self._clock.now()
        try:
            self.api.get(f"/apis/{modelservices.API_VERSION}", "discover kopilot.io")
        except failures.NotFoundError:
            log.info("the ModelService CRD is not installed: managing annotated workloads only")
            return False
        except failures.KubeError as e:
            log.warning("cannot tell whether the ModelService CRD is installed (%s)", e)
            return False
        return True

    def _recheck_crd(self, problems: list[str]) -> None:
        """Start watching ModelServices once the CRD appears (installed after kopilot started)."""
        if self.crd_served or self._clock.now() - self._crd_checked_at < CRD_RECHECK_S:
            return
        if self._serves_crd():
            self.crd_served = True
            self.modelservices.start()
            problems.append("ModelService CRD found: its cache is syncing")

    def wait_synced(self, timeout: float | None = None) -> bool:
        limit = timeout if timeout is not None else self.settings.sync_timeout_s
        return caches.wait_all_synced(self.informers, limit, self._clock)

    def stop(self) -> None:
        for informer in self.informers:
            informer.stop()
        if self.crd_served and self.modelservices not in self.informers:
            self.modelservices.stop()

    def __enter__(self) -> Self:
        self.start()
        if not self.wait_synced():
            self.stop()
            raise NotSyncedError(
                f"the API caches did not sync within {self.settings.sync_timeout_s:.0f} s: "
                + "; ".join(f"{i.kind}: {i.last_error or 'no answer'}" for i in self.informers),
                retry_after=5.0,
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- World port -------------------------------------------------------------------------
    def snapshot(self, now: float) -> cluster.ClusterSnapshot:
        if not all(i.synced for i in self.informers):
            raise NotSyncedError("the API caches are not synced yet", retry_after=1.0)
        problems: list[str] = []
        self._recheck_crd(problems)
        late = (
            (self.modelservices,)
            if self.crd_served and self.modelservices not in self.informers
            else ()
        )
        for informer in (*self.informers, *late):
            problems.extend(f"{informer.kind} {k}: {v}" for k, v in informer.problems().items())
        pods = tuple(sorted(self.pods.items().values(), key=lambda p: p.key))
        nodes = tuple(
            sorted(
                converting.with_gpu_usage(self.nodes.items().values(), pods),
                key=lambda n: n.name,
            )
        )
        services: list[cluster.ModelService] = []
        demand: dict[str, series.Series] = {}
        for ref, svc in self._managed(problems, now):
            services.append(svc)
            query = ref.settings.demand_query
            if query is None or self._demand is None:
                continue
            try:
                demand[svc.key] = self._demand.demand(
                    query,
                    start=now - self.settings.demand_history_s,
                    end=now,
                    step=self.settings.demand_step_s,
                )
            except errors.KopilotError as e:
                problems.append(f"service {svc.key}: demand query failed, no history: {e}")
        metrics, blind = self._read_signals(now, problems)
        self.problems = tuple(problems)
        return cluster.ClusterSnapshot(
            time=now,
            nodes=nodes,
            pods=pods,
            services=tuple(services),
            demand=demand,
            metrics=metrics,
            blind=blind,
        )

    def _read_signals(
        self, now: float, problems: list[str]
    ) -> tuple[dict[str, series.Series], dict[str, str]]:
        if self._signals is None:
            return {}, {cluster.METRICS: "no signal source (kopilot run without --prometheus-url)"}
        reading = self._signals.read(now)
        problems.extend(f"signals: {line}" for line in reading.dropped)
        if reading.blind is not None:
            problems.append(f"signals: {reading.blind}")
            return {}, {cluster.METRICS: reading.blind}
        return dict(reading.streams), {}

    def apply(self, action: actions.Action, now: float) -> worlds.Applied:
        if self.may_act is not None and not self.may_act():
            return worlds.Applied(
                ok=False, detail=f"{actions.describe(action)}: not the leader any more; skipped"
            )
        decision = resuming.decision_id(action, now)
        kind = self.workload_kind(_service_of(action))
        result = self._actuator.apply(action, now, decision=decision, workload_kind=kind)
        level = logging.INFO if result.ok else logging.WARNING
        log.log(level, "%s -> %s", actions.describe(action), result.detail or "ok")
        return result

    # -- helpers ----------------------------------------------------------------------------
    def workload_kind(self, service: str | None) -> str | None:
        if service is None:
            return None
        for ref, _ in self._managed():
            if ref.key == service:
                return ref.kind
        return None

    def _managed(
        self, problems: list[str] | None = None, now: float | None = None
    ) -> list[Managed]:
        """The managed workloads: those a usable ModelService targets, then those annotated
        `kopilot.io/managed` that no ModelService manages. With `problems` (a snapshot), the
        unreadable annotations are added there and, while this replica may act, each
        ModelService's `Ready` condition is written when it changed."""
        scope = self.settings.namespaces
        workloads = {
            (w.kind, w.key): w
            for informer in (self.deployments, self.statefulsets)
            for w in informer.items().values()
            if scope is None or w.namespace in scope
        }
        specs = [
            m
            for m in self.modelservices.items().values()
            if self.crd_served
            and self.modelservices.synced
            and (scope is None or m.namespace in scope)
        ]
        managing, verdicts = modelservices.resolve(specs, workloads)
        found: dict[str, Managed] = {}
        for target, spec in managing.items():
            info = workloads[(spec.target_kind, target)]
            assert spec.settings is not None
            ref = converting.WorkloadRef(
                kind=info.kind, namespace=info.namespace, name=info.name, settings=spec.settings
            )
            found[target] = (ref, converting.service_from(info, spec.settings))
        for info in workloads.values():
            if problems is not None and info.problem is not None:
                problems.append(f"{info.kind} {info.key}: {info.problem}")
            if info.annotated is not None and info.key not in found:
                found[info.key] = (
                    info.annotated,
                    converting.service_from(info, info.annotated.settings),
                )
        if problems is not None and now is not None:
            self.verdicts = verdicts
            self._write_status({s.key: s for s in specs}, verdicts, problems, now)
        return [found[k] for k in sorted(found)]

    def _write_status(
        self,
        specs: dict[str, modelservices.Spec],
        verdicts: dict[str, modelservices.Verdict],
        problems: list[str],
        now: float,
    ) -> None:
        for key, verdict in sorted(verdicts.items()):
            spec = specs[key]
            if not verdict.usable:
                problems.append(f"ModelService {key}: {verdict.reason}: {verdict.message}")
            body = modelservices.status_patch(spec, verdict, now)
            if body is None or (self.may_act is not None and not self.may_act()):
                continue
            path = f"/apis/{modelservices.API_VERSION}/namespaces/{spec.namespace}/modelservices/{spec.name}/status"
            try:
                self.api.patch(path, body, f"write the status of ModelService {key}")
            except failures.KubeError as e:
                problems.append(f"ModelService {key}: status not written: {e}")


def _service_of(action: actions.Action) -> str | None:
    match action:
        case actions.Scale():
            return action.service
        case actions.Restart():
            return action.service
        case actions.Alert() | actions.Recommend():
            parts = action.subject.split("/")
            return "/".join(parts[1:]) if parts[0] == "service" and len(parts) == 3 else None
        case _:
            return None
