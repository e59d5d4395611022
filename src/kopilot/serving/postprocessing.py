"""From raw model output to detections in the original image's pixels.

Two YOLO output layouts are understood:
- `CLASSIC` `[batch, 4 + classes, N]` (YOLOv5u/v8/v11 ONNX exports): per anchor a centre-x,
  centre-y, width, height box and one score per class; needs a confidence filter and NMS.
- `END_TO_END` `[batch, N, 6]` (NMS-free exports such as YOLOv10 and YOLO26): per row x1, y1,
  x2, y2, score, class; only the confidence filter applies.
Coordinates come out in the letterboxed input's pixels and are mapped back with the `Letterbox`.
"""

from __future__ import annotations

import dataclasses
import enum

import numpy as np
import numpy.typing as npt

from kopilot.serving import preprocessing

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
# Ultralytics' cap on the candidates NMS sees, so a model that fires everywhere stays bounded.
MAX_NMS_CANDIDATES = 30_000


class OutputLayout(enum.Enum):
    CLASSIC = "classic"  # [batch, 4 + classes, N]: boxes + class scores, NMS needed
    END_TO_END = "end2end"  # [batch, N, 6]: x1, y1, x2, y2, score, class; NMS-free


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Thresholds:
    """Post-processing knobs; `confidence` keeps scores strictly above it."""

    confidence: float
    iou: float
    max_detections: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Detection:
    """One object: a box in the original image's pixels (x1, y1) top-left, (x2, y2) bottom-right."""

    x1: float
    y1: float
    x2: float
    y2: float
    class_id: int
    score: float


def nms(boxes: FloatArray, scores: FloatArray, iou_threshold: float) -> IntArray:
    """Greedy non-maximum suppression: indices of the boxes kept, highest score first.

    A box is dropped when its IoU with an already kept, higher-scoring box exceeds the threshold.
    """
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    keep: list[int] = []
    while order.size:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        w = np.clip(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0, None)
        inter = w * h
        union = areas[best] + areas[rest] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def class_aware_nms(
    boxes: FloatArray, scores: FloatArray, classes: IntArray, iou_threshold: float
) -> IntArray:
    """NMS within each class only: boxes of different classes never suppress each other.

    The usual offset trick: shift each class's boxes far apart so they cannot overlap.
    """
    if boxes.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    span = float(np.max(np.abs(boxes))) * 2 + 1
    shifted = boxes + (classes.astype(np.float32) * span)[:, None]
    return nms(shifted, scores, iou_threshold)


def decode_classic(
    output: FloatArray, thresholds: Thresholds
) -> tuple[FloatArray, FloatArray, IntArray]:
    """One image's `[4 + classes, N]` output -> (xyxy boxes, scores, classes) after NMS."""
    candidates = output.T  # [N, 4 + classes]
    class_scores = candidates[:, 4:]
    classes = np.argmax(class_scores, axis=1)
    scores = class_scores[np.arange(class_scores.shape[0]), classes]
    finite = np.all(np.isfinite(candidates[:, :4]), axis=1)
    keep = np.flatnonzero((scores > thresholds.confidence) & finite)
    if keep.size > MAX_NMS_CANDIDATES:
        keep = keep[np.argsort(-scores[keep], kind="stable")[:MAX_NMS_CANDIDATES]]
    xywh = candidates[keep, :4]
    boxes = np.empty_like(xywh)
    boxes[:, 0] = xywh[:, 0] - xywh[:, 2] / 2
    boxes[:, 1] = xywh[:, 1] - xywh[:, 3] / 2
    boxes[:, 2] = xywh[:, 0] + xywh[:, 2] / 2
    boxes[:, 3] = xywh[:, 1] + xywh[:, 3] / 2
    scores, classes = scores[keep], classes[keep].astype(np.int64)
    kept = class_aware_nms(boxes, scores, classes, thresholds.iou)[: thresholds.max_detections]
    return boxes[kept], scores[kept], classes[kept]


def decode_end_to_end(
    output: FloatArray, thresholds: Thresholds
) -> tuple[FloatArray, FloatArray, IntArray]:
    """One image's `[N, 6]` output -> (xyxy boxes, scores, classes), best first."""
    finite = np.all(np.isfinite(output[:, :4]), axis=1)
    keep = np.flatnonzero((output[:, 4] > thresholds.confidence) & finite)
    keep = keep[np.argsort(-output[keep, 4], kind="stable")][: thresholds.max_detections]
    rows = output[keep]
    return rows[:, :4].copy(), rows[:, 4].copy(), np.rint(rows[:, 5]).astype(np.int64)


def unletterbox(boxes: FloatArray, letterbox: preprocessing.Letterbox) -> FloatArray:
    """Map xyxy boxes from the model input back to the original image, clipped to its edges."""
    out = boxes.astype(np.float32, copy=True)
    out[:, [0, 2]] = (out[:, [0, 2]] - letterbox.pad_x) / letterbox.scale
    out[:, [1, 3]] = (out[:, [1, 3]] - letterbox.pad_y) / letterbox.scale
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, letterbox.width)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, letterbox.height)
    return out


def detections(
    output: FloatArray,
    *,
    layout: OutputLayout,
    letterbox: preprocessing.Letterbox,
    thresholds: Thresholds,
    num_classes: int | None,
) -> tuple[Detection, ...]:
    """One image's raw output -> its detections in original-image pixels, best first.

    Rows whose class index is outside the model's classes (a malformed end-to-end output) are
    dropped rather than reported under a made-up name.
    """
    if layout is OutputLayout.CLASSIC:
        boxes, scores, classes = decode_classic(output, thresholds)
    else:
        boxes, scores, classes = decode_end_to_end(output, thresholds)
    valid = (classes >= 0) & (classes < (num_classes or np.iinfo(np.int32).max))
    boxes = unletterbox(boxes[valid], letterbox)
    return tuple(
        Detection(
            x1=float(b[0]),
            y1=float(b[1]),
            x2=float(b[2]),
            y2=float(b[3]),
            class_id=int(c),
            score=float(s),
        )
        for b, s, c in zip(boxes, scores[valid], classes[valid], strict=True)
    )
