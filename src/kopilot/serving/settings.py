"""The serving runtime's settings: nested frozen dataclasses, passed in explicitly."""

from __future__ import annotations

import dataclasses
import pathlib


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ModelSettings:
    """Which model to load and how ONNX Runtime runs it."""

    path: pathlib.Path
    # Execution providers in order of preference; empty means "the best ones installed"
    # (TensorRT, then CUDA, then CPU).
    providers: tuple[str, ...] = ()
    # ONNX Runtime intra-op threads; 0: one less than the usable CPUs (at least 1).
    intra_op_threads: int = 0
    # Square input size when the model's input is dynamic and its metadata has no `imgsz`.
    image_size: int | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DetectionSettings:
    """Default post-processing thresholds; a request may override them."""

    confidence_threshold: float = 0.25
    iou_threshold: float = 0.45
    max_detections: int = 300


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class BatchingSettings:
    """Triton-style dynamic batching: a batch closes at `max_batch_size` or after
    `max_queue_delay_s` from its oldest request, whichever comes first. At most `max_queue_size`
    requests wait; more are refused with 429 instead of growing memory without bound."""

    max_batch_size: int = 8
    max_queue_delay_s: float = 0.005
    max_queue_size: int = 64


# What a detector needs; every other Pillow format (EPS, PSD, TIFF, ICNS, ...) is refused before
# its plugin looks at the bytes.
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP")
# Longest side in pixels, checked from the header (a 39,000,000 x 1 PNG has few pixels but a
# 156 MB row); 16,383 is WebP's own limit.
MAX_IMAGE_SIDE = 16_384
# What one decode may allocate (Pillow's bytes per pixel for the mode, plus the RGB copy),
# checked from the header (after libjpeg's draft scaling) before any pixel is decoded.
MAX_DECODE_BYTES = 256 * 1024 * 1024


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LimitSettings:
    """Limits on what a request may carry and what the server holds for all requests at once.

    Worst case memory beyond the model: `max_inflight_body_bytes` of bodies being read plus
    `decode_threads` x `max_decode_bytes` of pixels being decoded (docs/serving.md).
    """

    max_body_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    max_image_side: int = MAX_IMAGE_SIDE
    max_decode_bytes: int = MAX_DECODE_BYTES
    image_formats: tuple[str, ...] = IMAGE_FORMATS
    # Body bytes held by all requests still being read; over it a request gets 429 at once.
    max_inflight_body_bytes: int = 256 * 1024 * 1024


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionSettings:
    """What one slow or idle client may hold (enforced by `connections.GuardedProtocol`)."""

    # A request's line and headers must arrive within this many seconds of its first byte (or
    # of the connection's opening); otherwise 408 and the connection closes.
    header_timeout_s: float = 10.0
    # Its body must arrive within this many seconds of its headers; otherwise 408 and close.
    body_timeout_s: float = 30.0
    # Idle keep-alive connections close after this many seconds.
    keep_alive_s: int = 5
    # Open connections; one more evicts the oldest connection that has not sent a request's
    # headers (idle or slow), so a probe's fresh connection always gets in.
    max_connections: int = 512


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PreprocessSettings:
    """How images become tensors."""

    # Let libjpeg decode a large JPEG at 1/2, 1/4 or 1/8 scale when the letterbox shrinks it at
    # least that much (several times faster; pixels differ slightly from a full-size decode).
    jpeg_draft: bool = True
    # Threads that decode images (their own pool, not asyncio's default one sized from the
    # host's CPUs): at most this many decodes hold pixels at once.
    decode_threads: int = 2


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ServeSettings:
    """Everything `kopilot serve` needs."""

    model: ModelSettings
    detection: DetectionSettings = DetectionSettings()
    preprocess: PreprocessSettings = PreprocessSettings()
    batching: BatchingSettings = BatchingSettings()
    limits: LimitSettings = LimitSettings()
    connections: ConnectionSettings = ConnectionSettings()
    host: str = "127.0.0.1"
    port: int = 8080
    # Seconds uvicorn waits for in-flight requests on SIGTERM before closing connections.
    graceful_timeout_s: float = 30.0
    log_level: str = "info"
