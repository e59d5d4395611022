"""The detector model: an ONNX Runtime session checked to be a YOLO-family object detector.

Loading checks what a request would otherwise discover too late: one image input `[batch, 3, H, W]`,
a first output of rank 3 in a layout `postprocessing` understands, class names that agree with it
(read from the model's metadata, as Ultralytics exports write them), and a batch axis that is
dynamic or fixed. Execution providers: TensorRT, then CUDA, then CPU, those that are installed.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import os
import pathlib
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime

from kopilot.serving import errors, postprocessing, settings

PREFERRED_PROVIDERS = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CPUExecutionProvider",
)
DEFAULT_IMAGE_SIZE = 640
_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ModelInfo:
    """What the server knows about the loaded model (also served on `GET /v1/model`)."""

    path: pathlib.Path
    name: str
    input_name: str
    input_height: int
    input_width: int
    layout: postprocessing.OutputLayout
    # Empty only for an end-to-end model whose metadata has no `names`.
    class_names: tuple[str, ...]
    # None when the batch axis is dynamic; otherwise every run must carry exactly this many images.
    fixed_batch: int | None
    providers: tuple[str, ...]

    @property
    def num_classes(self) -> int | None:
        """How many classes the model knows (None: an end-to-end model without `names`)."""
        return len(self.class_names) or None

    def class_name(self, class_id: int) -> str:
        """The name of `class_id`, or `class_<id>` when the model's metadata has none."""
        if 0 <= class_id < len(self.class_names):
            return self.class_names[class_id]
        return f"class_{class_id}"


def auto_intra_op_threads() -> int:
    """One less than the CPUs this process may run on, at least 1.

    The spare CPU decodes and letterboxes the next requests while a batch runs. On the 2-core
    machine of bench/serving_batching.py, 1 intra-op thread beat ONNX Runtime's default (one per
    core) in both batched and unbatched serving: the two-thread pool stalls whenever decoding
    takes one of its cores.
    """
    return max(1, usable_cpus() - 1)


def usable_cpus(cgroup_cpu_max: pathlib.Path = pathlib.Path("/sys/fs/cgroup/cpu.max")) -> int:
    """CPUs this process may use: its affinity, capped by a cgroup v2 CPU quota (a pod's limit)."""
    cpus = len(os.sched_getaffinity(0))
    try:
        quota, period = cgroup_cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return cpus
    if quota == "max" or not quota.isdigit() or not period.isdigit() or int(period) == 0:
        return cpus
    return max(1, min(cpus, math.ceil(int(quota) / int(period))))


def choose_providers(requested: tuple[str, ...], available: list[str]) -> list[str]:
    """The execution providers to ask ONNX Runtime for, best first.

    An explicit request must name installed providers; the default takes every preferred one that
    is installed, so a CUDA build of ONNX Runtime on a GPU node uses the GPU without flags.
    """
    if requested:
        missing = [p for p in requested if p not in available]
        if missing:
            raise errors.ModelError(
                f"execution provider(s) {', '.join(missing)} are not in this ONNX Runtime build; "
                f"installed: {', '.join(available)} (install onnxruntime-gpu for CUDA/TensorRT)"
            )
        return list(requested)
    chosen = [p for p in PREFERRED_PROVIDERS if p in available]
    return chosen or list(available)


def parse_class_names(raw: str | None) -> tuple[str, ...]:
    """Class names from the `names` metadata: `{0: 'person', ...}` (Ultralytics) or a JSON list."""
    if not raw:
        return ()
    try:
        value: Any = ast.literal_eval(raw)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        try:
            value = json.loads(raw)
        except ValueError as e:
            raise errors.ModelError(
                f"the model's `names` metadata is neither a Python nor a JSON literal: {raw[:80]!r}"
            ) from e
    if isinstance(value, dict):
        try:
            ordered = sorted((int(k), str(v)) for k, v in value.items())
        except (TypeError, ValueError) as e:
            raise errors.ModelError(
                f"the model's `names` metadata has non-integer class ids: {raw[:80]!r}"
            ) from e
        if [k for k, _ in ordered] != list(range(len(ordered))):
            raise errors.ModelError(
                f"the model's `names` metadata does not number classes 0..n-1: {raw[:80]!r}"
            )
        return tuple(v for _, v in ordered)
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    raise errors.ModelError(f"the model's `names` metadata is not a dict or list: {raw[:80]!r}")


def _metadata_size(raw: str | None) -> tuple[int, int] | None:
    """`imgsz` metadata (`[640, 640]` or `640`) as (height, width)."""
    if not raw:
        return None
    try:
        value: Any = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return None
    if isinstance(value, int) and value > 0:
        return value, value
    if (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int) for v in value)
    ):
        return int(value[0]), int(value[1])
    return None


class Detector:
    """A loaded, validated detector. `run` is thread-safe (ONNX Runtime sessions are)."""

    def __init__(self, session: onnxruntime.InferenceSession, info: ModelInfo, dtype: Any) -> None:
        self._session = session
        self._dtype = dtype
        self.info = info

    def run(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Run a `[n, 3, H, W]` batch; returns the first output, `n` rows (padding removed)."""
        n = batch.shape[0]
        fixed = self.info.fixed_batch
        if fixed is not None and n != fixed:
            if n > fixed:
                raise errors.InferenceError(f"batch of {n} exceeds the model's fixed batch {fixed}")
            pad = np.zeros((fixed - n, *batch.shape[1:]), dtype=batch.dtype)
            batch = np.concatenate([batch, pad])
        try:
            outputs = self._session.run(None, {self.info.input_name: batch.astype(self._dtype)})
        except Exception as e:  # ONNX Runtime raises its own pybind exception types
            raise errors.InferenceError(f"ONNX Runtime failed on a batch of {n}: {e}") from e
        return np.asarray(outputs[0], dtype=np.float32)[:n]


def _static(dim: object) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


def load(model: settings.ModelSettings) -> Detector:
    """Open `model.path` with ONNX Runtime and check it is a detector this server can serve."""
    path = model.path
    if not path.is_file():
        raise errors.ModelError(f"model file not found: {path} (pass the path of an .onnx export)")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = model.intra_op_threads or auto_intra_op_threads()
    options.log_severity_level = 3
    # Idle intra-op threads sleep instead of spinning: a spinning pool burns the CPU that request
    # decoding needs (and a pod's CPU quota) between batches.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = choose_providers(model.providers, onnxruntime.get_available_providers())
    try:
        session = onnxruntime.InferenceSession(str(path), options, providers=providers)
    except Exception as e:  # InvalidProtobuf, InvalidGraph, Fail...: all pybind types
        raise errors.ModelError(
            f"{path}: ONNX Runtime cannot load this file as a model ({e}). Export a detector with "
            "`yolo export model=yolov8n.pt format=onnx`"
        ) from e
    meta = dict(session.get_modelmeta().custom_metadata_map)
    task = meta.get("task")
    if task is not None and task != "detect":
        raise errors.ModelError(
            f"{path}: the model's metadata says task={task!r}; this server serves object "
            "detectors (task 'detect')"
        )
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise errors.ModelError(
            f"{path}: a detector has one image input; this model has {len(inputs)}: "
            f"{[i.name for i in inputs]}"
        )
    image = inputs[0]
    dtype = _DTYPES.get(image.type)
    shape = list(image.shape)
    if dtype is None or len(shape) != 4 or _static(shape[1]) not in (3, None):
        raise errors.ModelError(
            f"{path}: a detector's input is a float image tensor [batch, 3, height, width]; "
            f"this model's input {image.name!r} is {image.type} {shape}"
        )
    height, width = _static(shape[2]), _static(shape[3])
    if height is None or width is None:
        size = (
            (model.image_size, model.image_size)
            if model.image_size
            else _metadata_size(meta.get("imgsz")) or (DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE)
        )
        height, width = height or size[0], width or size[1]
    outputs = session.get_outputs()
    if len(outputs[0].shape) != 3:
        raise errors.ModelError(
            f"{path}: a detector's first output is [batch, 4+classes, anchors] or "
            f"[batch, detections, 6]; this model's is {list(outputs[0].shape)} "
            "(a classifier or another kind of model?)"
        )
    names = parse_class_names(meta.get("names"))
    fixed_batch = _static(shape[0])
    probe = np.zeros((fixed_batch or 1, 3, height, width), dtype=dtype)
    try:
        out = np.asarray(session.run(None, {image.name: probe})[0])
    except Exception as e:
        raise errors.ModelError(
            f"{path}: a trial run on a {height}x{width} zero image failed: {e}"
        ) from e
    layout, names = _layout(path, out.shape, names, end2end=meta.get("end2end"))
    info = ModelInfo(
        path=path,
        name=path.stem,
        input_name=image.name,
        input_height=height,
        input_width=width,
        layout=layout,
        class_names=names,
        fixed_batch=fixed_batch,
        providers=tuple(session.get_providers()),
    )
    return Detector(session, info, dtype)


def _layout(
    path: pathlib.Path,
    shape: tuple[int, ...],
    names: tuple[str, ...],
    *,
    end2end: str | None,
) -> tuple[postprocessing.OutputLayout, tuple[str, ...]]:
    """Which output layout `shape` is, and the class names (made up as class_<i> if absent)."""
    _, rows, cols = shape
    declared = end2end is not None and end2end.lower() == "true"
    if declared or (cols == 6 and not (names and rows == 4 + len(names))):
        if cols != 6:
            raise errors.ModelError(
                f"{path}: an end-to-end detector's output is [batch, detections, 6]; got {list(shape)}"
            )
        return postprocessing.OutputLayout.END_TO_END, names
    if rows < 5:
        raise errors.ModelError(
            f"{path}: output {list(shape)} is neither [batch, 4+classes, anchors] nor "
            "[batch, detections, 6]; is this an object detector?"
        )
    classes = rows - 4
    if names and len(names) != classes:
        raise errors.ModelError(
            f"{path}: the output has {classes} class scores per anchor but the metadata names "
            f"{len(names)} classes (a segmentation or pose model?); serve a detection export"
        )
    return postprocessing.OutputLayout.CLASSIC, names or tuple(f"class_{i}" for i in range(classes))
