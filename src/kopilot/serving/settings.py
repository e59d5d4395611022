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


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LimitSettings:
    """Limits on what a request may carry."""

    max_body_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 40_000_000


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PreprocessSettings:
    """How images become tensors."""

    # Let libjpeg decode a large JPEG at 1/2, 1/4 or 1/8 scale when the letterbox shrinks it at
    # least that much (several times faster; pixels differ slightly from a full-size decode).
    jpeg_draft: bool = True


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ServeSettings:
    """Everything `kopilot serve` needs."""

    model: ModelSettings
    detection: DetectionSettings = DetectionSettings()
    preprocess: PreprocessSettings = PreprocessSettings()
    batching: BatchingSettings = BatchingSettings()
    limits: LimitSettings = LimitSettings()
    host: str = "127.0.0.1"
    port: int = 8080
    # Seconds uvicorn waits for in-flight requests on SIGTERM before closing connections.
    graceful_timeout_s: float = 30.0
    log_level: str = "info"
