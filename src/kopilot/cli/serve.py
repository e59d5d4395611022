"""`kopilot serve`: the object-detection model service (kopilot.serving) over HTTP."""

from __future__ import annotations

import pathlib
import signal
import sys

import typer

from kopilot.cli import checks
from kopilot.cli.app import app


@app.command()
def serve(
    *,
    model: pathlib.Path = typer.Option(
        ...,
        "--model",
        "-m",
        help="A YOLO-family ONNX detector (e.g. from `yolo export model=yolov8n.pt format=onnx`).",
        exists=True,
        dir_okay=False,
    ),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 in a container)."),
    port: int = typer.Option(8080, min=0, max=65535, help="TCP port to listen on."),
    max_batch_size: int = typer.Option(
        8, min=1, max=256, help="Largest dynamic batch; 1 turns batching off."
    ),
    max_queue_delay_ms: float = typer.Option(
        5.0,
        min=0.0,
        max=10_000.0,
        help="How long a batch waits for more requests, from its oldest.",
    ),
    max_queue_size: int = typer.Option(
        64, min=1, help="Requests allowed to wait for a batch; more get HTTP 429 (back-pressure)."
    ),
    conf: float = typer.Option(0.25, min=0.0, max=1.0, help="Default confidence threshold."),
    iou: float = typer.Option(0.45, min=0.0, max=1.0, help="Default NMS IoU threshold."),
    max_det: int = typer.Option(300, min=1, help="Default maximum detections per image."),
    image_size: int | None = typer.Option(
        None, min=32, help="Input size for a model with dynamic H/W and no `imgsz` metadata."
    ),
    providers: str = typer.Option(
        "",
        help="Comma-separated ONNX Runtime execution providers, best first "
        "(default: TensorRT, CUDA, CPU - those installed).",
    ),
    intra_op_threads: int = typer.Option(
        0,
        min=0,
        help="ONNX Runtime intra-op threads (0: one less than the usable CPUs, at least 1).",
    ),
    jpeg_draft: bool = typer.Option(
        True,
        "--jpeg-draft/--exact-jpeg",
        help="Decode large JPEGs at reduced scale in libjpeg (fast) or in full, then resize (exact).",
    ),
    max_body_mb: float = typer.Option(20.0, min=0.001, help="Largest request body, in MiB."),
    max_megapixels: float = typer.Option(
        40.0, min=0.001, help="Largest image accepted, in megapixels (checked before decoding)."
    ),
    max_side: int = typer.Option(
        16_384, min=1, help="Longest image side in pixels (checked before decoding)."
    ),
    max_decode_mb: float = typer.Option(
        256.0,
        min=0.001,
        help="Memory one decode may take, in MiB (mode x pixels, checked before decoding).",
    ),
    decode_threads: int = typer.Option(
        2, min=1, max=64, help="Threads that decode images; at most this many decode at once."
    ),
    formats: str = typer.Option(
        "JPEG,PNG,WEBP,BMP", help="Comma-separated image formats accepted (Pillow's names)."
    ),
    max_inflight_body_mb: float = typer.Option(
        256.0,
        min=0.001,
        help="Body bytes all requests being read may hold together, in MiB; more get HTTP 429.",
    ),
    max_connections: int = typer.Option(
        512,
        "--max-connections",
        "--limit-concurrency",
        min=1,
        help="Open connections; one more closes the oldest idle one (or is refused if none).",
    ),
    header_timeout: float = typer.Option(
        10.0, min=0.01, help="Seconds a request's headers may take to arrive (then 408)."
    ),
    body_timeout: float = typer.Option(
        30.0, min=0.01, help="Seconds a request's body may take after its headers (then 408)."
    ),
    keep_alive: int = typer.Option(5, min=1, help="Seconds an idle keep-alive connection stays."),
    graceful_timeout: float = typer.Option(
        30.0, min=0.0, help="Seconds to let in-flight requests finish on SIGTERM."
    ),
    log_level: str = typer.Option("info", help="debug, info, warning or error (JSON lines)."),
) -> None:
    """Serve an ONNX object detector over HTTP, with dynamic batching and Prometheus metrics.

    POST an image to /v1/detect (raw image body, multipart field `image`, or JSON with base64 `image`) and get boxes, classes, scores and timings back.

    /healthz is liveness; /readyz turns ready once the model is loaded and warmed up; /metrics is for Prometheus and kopilot's scaler; /openapi.json describes the API.

    SIGTERM finishes in-flight requests, then exits 0. A model that is not a detector exits with code 2 and says why.
    """
    from kopilot.serving import errors, preprocessing, server, settings

    if max_inflight_body_mb < max_body_mb:
        raise typer.BadParameter(
            f"must be at least --max-body-mb ({max_body_mb:g}), or no such body could be read",
            param_hint="--max-inflight-body-mb",
        )
    accepted = tuple(f.strip().upper() for f in formats.split(",") if f.strip())
    unknown = sorted(set(accepted) - preprocessing.readable_formats())
    if not accepted or unknown:
        raise typer.BadParameter(
            f"unknown format(s) {', '.join(unknown)}; use Pillow's names, e.g. JPEG,PNG,WEBP,BMP"
            if unknown
            else "name at least one format, e.g. JPEG,PNG",
            param_hint="--formats",
        )

    if log_level not in ("debug", "info", "warning", "error"):
        raise typer.BadParameter("use debug, info, warning or error", param_hint="--log-level")
    config = settings.ServeSettings(
        model=settings.ModelSettings(
            path=model,
            providers=tuple(p.strip() for p in providers.split(",") if p.strip()),
            intra_op_threads=intra_op_threads,
            image_size=image_size,
        ),
        detection=settings.DetectionSettings(
            confidence_threshold=conf, iou_threshold=iou, max_detections=max_det
        ),
        batching=settings.BatchingSettings(
            max_batch_size=max_batch_size,
            max_queue_delay_s=max_queue_delay_ms / 1000.0,
            max_queue_size=max_queue_size,
        ),
        preprocess=settings.PreprocessSettings(
            jpeg_draft=jpeg_draft, decode_threads=decode_threads
        ),
        limits=settings.LimitSettings(
            max_body_bytes=int(max_body_mb * 1024 * 1024),
            max_image_pixels=int(max_megapixels * 1_000_000),
            max_image_side=max_side,
            max_decode_bytes=int(max_decode_mb * 1024 * 1024),
            image_formats=accepted,
            max_inflight_body_bytes=int(max_inflight_body_mb * 1024 * 1024),
        ),
        connections=settings.ConnectionSettings(
            header_timeout_s=header_timeout,
            body_timeout_s=body_timeout,
            keep_alive_s=keep_alive,
            max_connections=max_connections,
        ),
        host=host,
        port=port,
        graceful_timeout_s=graceful_timeout,
        log_level=log_level,
    )
    # uvicorn re-raises the signal that stopped it once it has shut down gracefully; a SIGTERM
    # (how Kubernetes stops a pod) that was handled in full is a clean exit, not a crash.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))
    try:
        server.Server(config).run()
    except errors.ModelError as e:
        raise checks.fail(str(e)) from e
