"""The extender's view of the cluster, kept by the API server: node and pod informers, a
reconcile loop that hands their contents to `Extender.sync`, and a binder that records the
chosen GPUs on the pod before it creates the Binding.

Level-triggered, like a controller: every `interval_s` in which either informer saw a change
(and at least every `resync_s`) the loop gives the extender the whole current node and pod lists
(informer caches, no extra API calls), so a missed or repeated watch event cannot leave it wrong
for longer than one interval. A restarted extender therefore sees
the GPUs that running pods hold (on the indices in their `kopilot.io/gpu-indices` annotation), pods
placed by another scheduler, nodes added or removed, and pods that ended.
"""

from __future__ import annotations

import logging
import random
import threading
from pathlib import Path
from typing import Any

from kopilot.kits import clocks
from kopilot.kube import apis, caches, retrying
from kopilot.model import cluster, errors
from kopilot.scheduling import extender_types, extending

log = logging.getLogger(__name__)


def _node(obj: dict[str, Any]) -> extender_types.Node:
    try:
        return extender_types.convert(obj, extender_types.Node)
    except extender_types.MalformedError as e:
        raise errors.InvalidInputError(f"node {caches.key_of(obj)}: {e}") from e


def _pod(obj: dict[str, Any]) -> extender_types.Pod:
    try:
        return extender_types.convert(obj, extender_types.Pod)
    except extender_types.MalformedError as e:
        raise errors.InvalidInputError(f"pod {caches.key_of(obj)}: {e}") from e


def connect(
    kubeconfig: Path | None, *, in_cluster: bool, clock: clocks.Clock, rng: random.Random
) -> apis.Api:
    """An `Api` from a kubeconfig file, or the pod's service account when `in_cluster`."""
    api_client = apis.client_for(kubeconfig, in_cluster=in_cluster)
    return apis.Api(api_client, retrying.Retrier(clock, rng, retrying.Backoff()))


def api_binder(api: apis.Api) -> extending.Binder:
    """Create the pod's Binding, carrying its GPUs as an annotation (the API server copies a
    Binding's annotations onto the pod in the same write)."""

    def bind(namespace: str, name: str, uid: str, node: str, gpus: tuple[int, ...]) -> None:
        meta: dict[str, Any] = {"name": name, "namespace": namespace, "uid": uid}
        if gpus:
            meta["annotations"] = {cluster.ANNOTATION_GPU_INDICES: ",".join(map(str, gpus))}
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": meta,
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        api.post(
            f"/api/v1/namespaces/{namespace}/pods/{name}/binding",
            binding,
            f"bind pod {namespace}/{name} to {node}",
        )

    return bind


class ClusterSync:
    """Node and pod informers feeding `extender.sync` every `interval_s` seconds."""

    def __init__(
        self,
        extender: extending.Extender,
        api: apis.Api,
        *,
        clock: clocks.Clock,
        interval_s: float = 1.0,
        resync_s: float = 30.0,
    ) -> None:
        self.extender = extender
        self.interval_s = interval_s
        self.resync_s = resync_s
        self._versions: tuple[str, str] | None = None
        self._synced_at = -float("inf")
        self._clock = clock
        common: dict[str, Any] = {"api": api, "clock": clock}
        self.nodes = caches.Informer[extender_types.Node](
            kind="Node", path=caches.NODES, transform=_node, **common
        )
        self.pods = caches.Informer[extender_types.Pod](
            kind="Pod", path=caches.PODS, transform=_pod, **common
        )
        self.last: extending.SyncReport | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._problems: frozenset[str] = frozenset()

    def wait_synced(self, timeout: float) -> bool:
        """Start the informers and wait until both listed, then sync once."""
        self.nodes.start()
        self.pods.start()
        if not caches.wait_all_synced((self.nodes, self.pods), timeout, self._clock):
            return False
        self.sync_once(force=True)
        return True

    def sync_once(self, *, force: bool = False) -> extending.SyncReport | None:
        """Reconcile, unless neither list changed since the last time (their resourceVersions)
        and the last full pass is under `resync_s` old (which also expires grace periods)."""
        versions = (self.nodes.resource_version, self.pods.resource_version)
        now = self._clock.now()
        if not force and versions == self._versions and now - self._synced_at < self.resync_s:
            return None
        self._versions, self._synced_at = versions, now
        report = self.extender.sync(self.nodes.items().values(), self.pods.items().values())
        problems = frozenset(
            [*report.problems, *self.nodes.problems().values(), *self.pods.problems().values()]
        )
        for p in sorted(problems - self._problems):  # each problem once, when it appears
            log.warning("extender sync: %s", p)
        self._problems = problems
        if report.changed:
            log.info(
                "extender sync: %d node(s) (+%d -%d), adopted %d pod(s), released %d",
                report.nodes,
                len(report.nodes_added),
                len(report.nodes_removed),
                len(report.adopted),
                len(report.released),
            )
        self.last = report
        return report

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="extender-sync", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stopping.wait(self.interval_s):
            try:
                self.sync_once()
            except Exception:  # keep syncing: the next interval starts from the lists again
                log.exception("extender sync failed; retrying in %.1f s", self.interval_s)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5.0)
        self.nodes.stop()
        self.pods.stop()
