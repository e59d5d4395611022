"""KubeWorld at scale: a 1,000-node kwok cluster with 10,000 pods; sync time, snapshot time, memory.

Starts the test control plane (tests/kube's), creates `--nodes` kwok GPU nodes and `--pods` pods
(`--deployments` x `--replicas` through Deployments, half of them kopilot-managed, placed by the
real kube-scheduler; the rest as pods bound at creation, since the controller-manager's 20
requests/s would take minutes; half of all pods ask for a GPU; kwok runs them), then measures, in
this process:

- cold sync: a new KubeWorld lists nodes, pods, Deployments and StatefulSets (raw JSON, paginated)
  and converts them: what a start or a leader take-over costs;
- snapshot: `KubeWorld.snapshot(now)` from the watch caches, once per loop cycle: the per-cycle
  refresh (target: under 2 s);
- relist: the pod cache listed again from scratch (what a 410 Gone on the watch costs);
- watch lag: a scale written through the API until the snapshot shows it;
- memory: this process's resident memory after the caches hold everything (target: under 1 GiB),
  next to the same process before the KubeWorld existed.

    python bench/kube_snapshot.py [--nodes 1000] [--pods 10000] [--cycles 20]

Needs the binaries from `bash scripts/setup.d/50-controlplane.sh` ($KOPILOT_CACHE respected).
Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from concurrent import futures
from pathlib import Path

from kubernetes import config

import datasets  # bench/datasets.py: --quick
from kopilot.kits import clocks
from kopilot.kube import apis, controlplane, notes, retrying, worlds

REPO = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def stamp(t0: float, what: str) -> None:
    print(f"[{time.perf_counter() - t0:6.1f}s] {what}", flush=True)


def populate(
    api: apis.Api, *, nodes: int, pods: int, deployments: int, per: int, t0: float
) -> None:
    capacity = {"cpu": "96", "memory": "1Ti", "pods": "110", "nvidia.com/gpu": "8"}

    def make_node(i: int) -> None:
        api.post(
            "/api/v1/nodes",
            {
                "metadata": {
                    "name": f"kwok-{i:04d}",
                    "labels": {"type": "kwok", "nvidia.com/gpu.product": "A100-80GB"},
                    "annotations": {"kwok.x-k8s.io/node": "fake"},
                },
                "status": {"capacity": capacity, "allocatable": capacity},
            },
            "create node",
        )

    with futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(make_node, range(nodes)))
    stamp(t0, f"{nodes} nodes created")
    api.post("/api/v1/namespaces", {"metadata": {"name": "bench"}}, "create namespace")
    for d in range(deployments):
        managed = d % 2 == 0
        limits = {"nvidia.com/gpu": "1"} if d % 4 < 2 else {}
        annotations = (
            {notes.MANAGED: "true", notes.CAPACITY_RPS: "10", notes.MAX_REPLICAS: "2000"}
            if managed
            else {}
        )
        api.post(
            "/apis/apps/v1/namespaces/bench/deployments",
            {
                "metadata": {"name": f"svc-{d:03d}", "annotations": annotations},
                "spec": {
                    "replicas": per,
                    "selector": {"matchLabels": {"app": f"svc-{d:03d}"}},
                    "template": {
                        "metadata": {"labels": {"app": f"svc-{d:03d}"}},
                        "spec": {
                            "containers": [
                                {
                                    "name": "model",
                                    "image": "registry.invalid/kopilot/detector:bench",
                                    "resources": {
                                        "requests": {"cpu": "100m", "memory": "256Mi", **limits},
                                        "limits": limits,
                                    },
                                }
                            ]
                        },
                    },
                },
            },
            "create deployment",
        )
    stamp(t0, f"{deployments} deployments x {per} replicas created")
    bare = pods - per * deployments

    def make_pod(i: int) -> None:
        # Bound at creation (as a scheduler would have bound it): the controller-manager's
        # 20 requests/s would take ~8 minutes to make them all through ReplicaSets.
        limits = {"nvidia.com/gpu": "1"} if i % 2 else {}
        api.post(
            "/api/v1/namespaces/bench/pods",
            {
                "metadata": {"name": f"bare-{i:05d}", "labels": {"app": f"bare-{i % 50}"}},
                "spec": {
                    "nodeName": f"kwok-{i % nodes:04d}",
                    "containers": [
                        {
                            "name": "job",
                            "image": "registry.invalid/kopilot/job:bench",
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "256Mi", **limits},
                                "limits": limits,
                            },
                        }
                    ],
                },
            },
            "create pod",
        )

    with futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(make_pod, range(bare)))
    stamp(t0, f"{bare} bound pods created")


def count_running(api: apis.Api) -> tuple[int, int]:
    """(pods, Running pods) in `bench`, from a paginated list (field selectors give no counts)."""
    total = running = 0
    token = ""
    while True:
        query: dict[str, str | int | bool] = {"limit": 1000}
        if token:
            query["continue"] = token
        page = api.call("GET", "/api/v1/namespaces/bench/pods", "list pods", query=query)
        for pod in page.get("items") or []:
            total += 1
            running += (pod.get("status") or {}).get("phase") == "Running"
        token = (page.get("metadata") or {}).get("continue") or ""
        if not token:
            return total, running


def wait_created(api: apis.Api, pods: int, t0: float, timeout: float, settle: float) -> int:
    """Until all `pods` exist, then up to `settle` s more for kwok to run them; Running count."""
    deadline = time.monotonic() + timeout
    settled_by: float | None = None
    while True:
        total, running = count_running(api)
        stamp(t0, f"{total} pods, {running} Running (of {pods})")
        if total >= pods and settled_by is None:
            settled_by = time.monotonic() + settle
        if running >= pods or (settled_by is not None and time.monotonic() > settled_by):
            return running
        if time.monotonic() > deadline:
            raise SystemExit(f"only {total} of {pods} pods created after {timeout:.0f} s")
        time.sleep(10.0)


LIST_VARIANTS: dict[str, dict[str, str | int | bool]] = {
    "pages of 500 from the watch cache:": {"limit": 500, "resourceVersion": "0"},
    "pages of 500, consistent reads:": {"limit": 500},
    "one response, consistent read:": {},
}


def time_list(api: apis.Api, query: dict[str, str | int | bool]) -> tuple[float, float, int]:
    """Seconds, megabytes and pages to list every pod with `query` (HTTP + JSON parse)."""
    started = time.perf_counter()
    size = pages = 0
    token = ""
    while True:
        q = dict(query)
        if token:
            q["continue"] = token
            q.pop("resourceVersion", None)
        response = api.raw("GET", "/api/v1/pods", "list pods", query=q, timeout=(10.0, 300.0))
        data = response.data
        size += len(data)
        pages += 1
        token = (json.loads(data).get("metadata") or {}).get("continue") or ""
        if not token:
            return time.perf_counter() - started, size / 1e6, pages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--deployments", type=int, default=10)
    parser.add_argument("--replicas", type=int, default=100, help="per Deployment")
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=900.0, help="for the pods to exist")
    parser.add_argument(
        "--settle", type=float, default=120.0, help="then at most this long for them to run"
    )
    datasets.add_quick(parser, nodes=50, pods=500, deployments=2, replicas=50, cycles=3)
    args = parser.parse_args()
    datasets.apply_quick(parser, args)

    cache = Path(os.environ.get("KOPILOT_CACHE", Path.home() / ".cache" / "kopilot"))
    binaries = controlplane.pinned_binaries(
        cache=cache, versions_file=REPO / "hack" / "controlplane" / "versions.env"
    )
    if binaries.missing():
        datasets.fail(
            f"control-plane binaries missing in {binaries.bin_dir}: {', '.join(binaries.missing())}; "
            "build them with `bash scripts/setup.d/50-controlplane.sh`"
        )
    clock = clocks.WallClock()
    t0 = time.perf_counter()
    with (
        tempfile.TemporaryDirectory() as tmp,
        controlplane.running(binaries=binaries, workdir=Path(tmp), clock=clock) as cp,
    ):
        stamp(t0, "control plane up")
        api_client = config.new_client_from_config(config_file=str(cp.kubeconfig))
        api = apis.Api(api_client, retrying.Retrier(clock, random.Random(0)))
        populate(
            api,
            nodes=args.nodes,
            pods=args.pods,
            deployments=args.deployments,
            per=args.replicas,
            t0=t0,
        )

        running = wait_created(api, args.pods, t0, args.timeout, args.settle)

        base_rss = rss_mib()
        started = time.perf_counter()
        world = worlds.KubeWorld(api, clock=clock)
        world.start()
        if not world.wait_synced(300):
            raise SystemExit("the KubeWorld did not sync in 300 s")
        sync_s = time.perf_counter() - started
        times = []
        snap = world.snapshot(time.time())
        for _ in range(args.cycles):
            a = time.perf_counter()
            snap = world.snapshot(time.time())
            times.append(time.perf_counter() - a)
        rss = rss_mib()
        a = time.perf_counter()
        world.pods.relist()
        relist_s = time.perf_counter() - a

        listings = {name: time_list(api, query) for name, query in LIST_VARIANTS.items()}

        target = next(s for s in snap.services)
        a = time.perf_counter()
        api.patch(
            f"/apis/apps/v1/namespaces/{target.namespace}/deployments/{target.name}/scale",
            {"spec": {"replicas": target.replicas + 1}},
            "scale",
        )
        while (s := world.snapshot(time.time()).service(target.key)) is None or (
            s.replicas != target.replicas + 1
        ):
            time.sleep(0.005)
        lag_s = time.perf_counter() - a
        world.stop()
        plane = cp.rss_bytes()
        api_client.close()

    print()
    print(
        f"cluster: {len(snap.nodes)} nodes, {len(snap.pods)} pods ({running} Running when "
        f"measured), {len(snap.services)} managed services"
    )
    print(f"cold sync (list + convert everything):  {sync_s:6.2f} s")
    print(
        f"snapshot per cycle ({args.cycles} cycles):       median {statistics.median(times):.3f} s, "
        f"max {max(times):.3f} s   (target < 2 s)"
    )
    print(f"pod cache relist (a 410 Gone):          {relist_s:6.2f} s")
    print(f"watch lag (scale -> snapshot shows it): {lag_s * 1000:6.0f} ms")
    for name, (seconds, megabytes, pages) in listings.items():
        print(f"  LIST all pods, {name:<34} {seconds:6.2f} s, {megabytes:5.1f} MB in {pages} pages")
    print(
        f"kopilot process RSS with the caches:    {rss:6.0f} MiB (before the KubeWorld: "
        f"{base_rss:.0f} MiB)   (target < 1024 MiB)"
    )
    print(
        "control plane RSS: "
        + ", ".join(f"{name} {size / MIB:.0f} MiB" for name, size in plane.items())
    )


if __name__ == "__main__":
    main()
