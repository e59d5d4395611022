"""`kopilot extender`: serve kube-scheduler's extender API with kopilot's GPU placement."""

from __future__ import annotations

from pathlib import Path

import typer

from kopilot.cli import checks
from kopilot.cli.app import app


@app.command()
def extender(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 inside a pod)."),
    port: int = typer.Option(8888, min=0, max=65535, help="Port to listen on."),
    profile: str = typer.Option(
        "kopilot",
        help="Placement profile: kopilot, fgd, bestfit, packing, clustering, dotprod, random.",
    ),
    nodes: Path | None = typer.Option(
        None,
        help="A v1.NodeList JSON file (kubectl get nodes -o json) to start the node cache with; "
        "needed with nodeCacheCapable: true.",
    ),
    workload: Path | None = typer.Option(
        None,
        help="An openb-style pod list CSV whose task shapes are the target workload of the "
        "fragmentation score; without it the extender learns the shapes from the pods it sees.",
    ),
    kubeconfig: Path | None = typer.Option(
        None,
        help="Use this cluster's API: bind pods through it (the extender is the binder when "
        "bindVerb is set; the chosen GPUs go on the pod as kopilot.io/gpu-indices) and keep the node "
        "and pod caches from it (see --sync). Without it or --in-cluster, /bind only records "
        "the placement (dry run).",
    ),
    in_cluster: bool = typer.Option(
        False, help="Use the API with the pod's service account (as --kubeconfig)."
    ),
    sync: bool = typer.Option(
        True,
        help="With the API: watch nodes and pods and reconcile the extender's view every "
        "--sync-interval seconds (adopts pods placed before a restart or by another scheduler, "
        "releases pods that ended, follows nodes). Needs get/list/watch on nodes and pods.",
    ),
    sync_interval: float = typer.Option(1.0, min=0.1, help="Seconds between reconciles."),
    seed: int = typer.Option(0, help="Seed of the tie-breaking random stream."),
) -> None:
    """Serve the kube-scheduler extender API (POST /filter, /prioritize, /bind).

    kube-scheduler calls it for pods that ask for GPUs: /filter drops nodes where the pod's whole
    GPUs, GPU share (kopilot.io/gpu-milli) or MIG slice cannot fit on one GPU; /prioritize scores
    the rest 0-10 by the profile (kopilot: least fragmentation); /bind picks the GPU(s), records
    them, and creates the Binding. POST /forget releases a pod that ended. See README "GPU
    placement" and deploy/kube-scheduler/ for the KubeSchedulerConfiguration to use.
    """
    import logging

    from rich.console import Console

    from kopilot.kits import clocks, randomness
    from kopilot.model import errors
    from kopilot.scheduling import (
        demands,
        extender_server,
        extender_types,
        extending,
        profiles,
    )
    from kopilot.traces import openb

    console = Console(stderr=True)
    clock = clocks.WallClock()
    cluster_sync = None
    try:
        listed = extender_types.NodeList()
        if nodes is not None:
            try:
                listed = extender_types.decode(nodes.read_bytes(), extender_types.NodeList)
            except extender_types.MalformedError as e:
                raise errors.InvalidInputError(f"--nodes {nodes}: {e}") from e
        target = None
        if workload is not None:
            target = profiles.workload_of(
                demands.from_pod(tp.pod) for tp in openb.load_pods(workload)
            )
        profiles.named(profile, workload=target or profiles.workload_of([]))
        binder: extending.Binder = extending.no_binding
        api = None
        if kubeconfig is not None or in_cluster:
            from kopilot.kube import extender_sync

            api = extender_sync.connect(
                kubeconfig, in_cluster=in_cluster, clock=clock, rng=randomness.rng(seed, "api")
            )
            binder = extender_sync.api_binder(api)
        ext = extending.Extender(
            profile=profile,
            workload=target,
            binder=binder,
            rng=randomness.rng(seed, "extender"),
            clock=clock,
        )
        for problem in ext.learn(listed.items or []):
            console.print(
                f"[yellow]kopilot extender: --nodes {nodes}: {problem}; that node is "
                "failed for every pod until it changes[/yellow]"
            )
        if api is not None and sync:
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
            cluster_sync = extender_sync.ClusterSync(
                ext, api, clock=clock, interval_s=sync_interval
            )
            if not cluster_sync.wait_synced(timeout=60.0):
                cluster_sync.stop()
                raise errors.TemporaryError(
                    "the node and pod caches did not sync within 60 s: "
                    f"{cluster_sync.nodes.last_error or cluster_sync.pods.last_error or 'no answer'}"
                    "; check the API address and that the service account may list and watch "
                    "nodes and pods"
                )
            cluster_sync.start()
    except (errors.KopilotError, OSError, ValueError) as e:
        raise checks.fail(str(e)) from e
    try:
        server = extender_server.Server(ext, host=host, port=port)
    except OSError as e:
        if cluster_sync is not None:
            cluster_sync.stop()
        raise checks.fail(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
    binding = "through the API" if binder is not extending.no_binding else "recorded only (dry run)"
    view = (
        f"synced from the API every {sync_interval:g} s ({len(ext.nodes)} nodes, "
        f"{len(ext.bound)} pods)"
        if cluster_sync is not None
        else f"{len(ext.nodes)} node(s) cached"
    )
    console.print(
        f"kopilot extender ({profile}) on http://{host}:{server.port}: {view}, binding {binding}"
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        if cluster_sync is not None:
            cluster_sync.stop()
