"""`kopilot scaler`: serve kopilot's forecast to KEDA as a gRPC external scaler."""

from __future__ import annotations

from pathlib import Path

import typer

from kopilot.cli.app import app


@app.command()
def scaler(
    demand_dir: Path = typer.Option(
        ...,
        "--demand-dir",
        help="Directory with one request-rate CSV per service: <dir>/<namespace>/<name>.csv "
        "(Alibaba qps, Azure LLM trace, NAB timestamp/value or Crane ts/value format).",
        exists=True,
        file_okay=False,
    ),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(
        6000, min=0, max=65535, help="Port to listen on (0 picks a free one)."
    ),
    quantile: float = typer.Option(
        0.95,
        min=0.5,
        max=0.999,
        help="Forecast quantile of peak demand that replicas are planned for.",
    ),
    stream_interval: float = typer.Option(
        5.0, min=0.1, help="Seconds between StreamIsActive messages."
    ),
) -> None:
    """Run a KEDA external scaler (externalscaler.proto) driven by kopilot's demand forecast.

    Point a ScaledObject trigger of type `external` at this address with metadata
    `scalerAddress: <host>:<port>`, `capacityRps: <req/s one replica serves>` and optionally
    `coldStartSeconds`, `minReplicas`, `maxReplicas`, `service: <namespace>/<name>`. kopilot
    reports the metric `kopilot-replicas` (target 1 per replica) = the planned replica count:
    the forecast peak over the cold-start window, never below what current load needs, and never
    scaled to zero on missing or bad data. Stop with Ctrl-C.
    """
    import logging
    import threading

    from rich.console import Console

    from kopilot.kits import clocks
    from kopilot.scaling import planning
    from kopilot.scaling.keda import server, sources

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    console = Console()
    from kopilot.model import errors

    try:
        running = server.start(
            server.Scaler(
                sources.CsvDirectory(demand_dir),
                clocks.WallClock(),
                planning.PlanSettings(quantile=quantile),
            ),
            f"{host}:{port}",
            stream_interval_s=stream_interval,
        )
    except errors.KopilotError as e:
        Console(stderr=True).print(f"[red]kopilot scaler: {e}; pick another --port[/red]")
        raise typer.Exit(2) from e
    console.print(
        f"kopilot external scaler listening on {host}:{running.port} "
        f"(demand from {demand_dir}; gRPC health: grpc.health.v1.Health); Ctrl-C to stop"
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        console.print("stopping")
    finally:
        running.stop()
