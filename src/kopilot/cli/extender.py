"""`kopilot extender`: serve kube-scheduler's extender API with kopilot's GPU placement."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer

from kopilot.cli.app import app


@app.command()
def extender(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 inside a pod)."),
    port: int = typer.Option(8888, help="Port to listen on."),
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
        help="Bind pods through this cluster's API (the extender is the binder when bindVerb is "
        "set). Without it, /bind only records the placement (dry run).",
    ),
    in_cluster: bool = typer.Option(
        False, help="Bind through the API with the pod's service account."
    ),
    seed: int = typer.Option(0, help="Seed of the tie-breaking random stream."),
) -> None:
    """Serve the kube-scheduler extender API (POST /filter, /prioritize, /bind).

    kube-scheduler calls it for pods that ask for GPUs: /filter drops nodes where the pod's whole
    GPUs, GPU share (kopilot.io/gpu-milli) or MIG slice cannot fit on one GPU; /prioritize scores
    the rest 0-10 by the profile (kopilot: least fragmentation); /bind picks the GPU(s), records
    them, and creates the Binding. POST /forget releases a pod that ended. See README "GPU
    placement" and deploy/kube-scheduler/ for the KubeSchedulerConfiguration to use.
    """
    import json

    from rich.console import Console

    from kopilot.kits import randomness
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
    try:
        known = []
        if nodes is not None:
            raw = json.loads(nodes.read_text())
            listed = extender_types.convert(raw, extender_types.NodeList)
            known = [extending.node_from(n) for n in listed.items or []]
        target = None
        if workload is not None:
            target = profiles.workload_of(
                demands.from_pod(tp.pod) for tp in openb.load_pods(workload)
            )
        binder: Callable[[str, str, str, str], None] = extending.no_binding
        if kubeconfig is not None or in_cluster:
            binder = _api_binder(kubeconfig)
        ext = extending.Extender(
            profile=profile,
            nodes=known,
            workload=target,
            binder=binder,
            rng=randomness.rng(seed, "extender"),
        )
        profiles.named(profile, workload=target or profiles.workload_of([]))
    except (errors.KopilotError, OSError, ValueError) as e:
        console.print(f"[red]kopilot extender: {e}[/red]")
        raise typer.Exit(2) from e
    server = extender_server.Server(ext, host=host, port=port)
    console.print(
        f"kopilot extender ({profile}) on http://{host}:{server.port}: "
        f"{len(known)} node(s) cached, binding {'through the API' if binder is not extending.no_binding else 'recorded only (dry run)'}"
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


def _api_binder(kubeconfig: Path | None) -> Callable[[str, str, str, str], None]:
    from kubernetes import client, config

    if kubeconfig is not None:
        config.load_kube_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    else:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    api = client.CoreV1Api()

    def bind(namespace: str, name: str, uid: str, node: str) -> None:
        body = client.V1Binding(
            metadata=client.V1ObjectMeta(name=name, namespace=namespace, uid=uid),
            target=client.V1ObjectReference(api_version="v1", kind="Node", name=node),
        )
        api.create_namespaced_binding(namespace=namespace, body=body, _preload_content=False)

    return bind
