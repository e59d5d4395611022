"""`kopilot replay-exporter`: real traces served as the exporters' Prometheus series."""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

from kopilot.cli.app import app

if TYPE_CHECKING:
    from kopilot.sim import clusterfiles


@app.command("replay-exporter")
def replay_exporter(
    *,
    cluster: pathlib.Path | None = typer.Option(
        None,
        "--cluster",
        "-c",
        help="Cluster description (YAML or JSON: nodes with GPUs/MIG, pods with namespace, node, "
        "owner, requests/limits); default: the bundled example (kopilot/data/replay_cluster.yaml).",
    ),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(9400, min=0, max=65535, help="TCP port to listen on (0: any)."),
    speed: float = typer.Option(
        60.0, min=0.001, max=86_400.0, help="Trace seconds per wall second (60: a minute a second)."
    ),
    seed: int = typer.Option(0, help="Seed of the noise: the same seed gives the same values."),
    start: str = typer.Option(
        "0", help="Trace time to start at (90, 30m, 20h): 0 is the demand trace's first sample."
    ),
    tick: float = typer.Option(
        15.0, min=0.1, max=3600.0, help="Trace seconds per step of the replay."
    ),
    fault: list[str] = typer.Option(
        [],
        "--fault",
        help="A fault to inject, as key=value pairs: kind=leak,pod=ml/x,at=2h "
        "(kinds: leak, xid-storm, bad-node, latency-regression). Repeatable.",
    ),
    scenario: pathlib.Path | None = typer.Option(
        None, "--scenario", help="A YAML file whose `faults:` list is injected at start."
    ),
    kubeconfig: pathlib.Path | None = typer.Option(
        None,
        "--kubeconfig",
        help="Read the nodes and pods from this cluster's API server instead of --cluster "
        "(at start, then every --refresh seconds).",
        dir_okay=False,
    ),
    context: str | None = typer.Option(None, "--context", help="Kubeconfig context to use."),
    refresh: float = typer.Option(
        60.0, min=1.0, help="Seconds between readings of the cluster with --kubeconfig."
    ),
) -> None:
    """Serve real traces as kube-state-metrics, cAdvisor, dcgm-exporter and kopilot serving metrics.

    Every node and pod of the cluster gets the series those exporters publish, under their real names and labels (docs/signals.md), so one static Prometheus scrape job feeds `kopilot run --prometheus-url`. Demand follows the Alibaba GenAI trace, GPU duty cycles and CPU follow real samples, all on an accelerated clock.

    GET /metrics is for Prometheus, GET /healthz for liveness; GET /faults lists the faults and POST /faults (JSON) injects one now. See docs/replay-exporter.md.
    """
    import signal
    import threading
    from importlib import resources

    from kopilot.kits import clocks
    from kopilot.model import errors
    from kopilot.serving import instruments
    from kopilot.sim import clusterfiles, injections, replaying, replayserving

    source: Callable[[], clusterfiles.ClusterSpec] | None = None
    try:
        if kubeconfig is not None:
            if cluster is not None:
                raise errors.InvalidInputError("give --cluster or --kubeconfig, not both")
            source = _live_cluster(kubeconfig, context)
            spec = source()
        else:
            path = cluster or pathlib.Path(
                str(resources.files("kopilot") / "data" / "replay_cluster.yaml")
            )
            spec = clusterfiles.load(path)
        requests = [injections.from_flag(f) for f in fault]
        if scenario is not None:
            requests += injections.load_scenario(scenario)
        settings = replaying.Settings(
            latency_buckets=instruments.LATENCY_BUCKETS,
            seed=seed,
            speed=speed,
            tick_s=tick,
            start_s=injections.seconds(start, field="--start"),
        )
        replay = replaying.Replay(spec, replaying.bundled_traces(), settings, requests)
        exporter = replayserving.Exporter(
            replay, clocks.WallClock(), source=source, refresh_s=refresh
        )
        httpd = exporter.serve(host, port)
    except (errors.KopilotError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    except OSError as e:
        typer.echo(f"error: cannot listen on {host}:{port} ({e.strerror}); try --port", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"replaying {len(spec.nodes)} nodes and {len(spec.pods)} pods at {speed:g}x on "
        f"{httpd.url}/metrics ({len(replay.faults)} faults; POST {httpd.url}/faults adds one)"
    )
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    try:
        stopping.wait()
    finally:
        httpd.close()


def _live_cluster(
    kubeconfig: pathlib.Path, context: str | None
) -> Callable[[], clusterfiles.ClusterSpec]:
    """Read the cluster's nodes and pods from its API server, as a cluster description."""
    from kopilot.kits import clocks, randomness
    from kopilot.kube import apis, inventories, retrying
    from kopilot.sim import clusterfiles

    retrier = retrying.Retrier(clocks.WallClock(), randomness.rng(0, "replay-exporter-api"))
    api = apis.Api(apis.client_for(kubeconfig, context=context), retrier, timeout_s=10.0)
    where = f"from the API server of {kubeconfig}"
    return lambda: clusterfiles.from_mapping(inventories.describe(api), source=where)
