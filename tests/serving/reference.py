"""An independent reference: the model run directly with ONNX Runtime, pre- and post-processing
written out plainly here (Pillow letterbox, per-anchor loop, greedy per-class NMS), sharing no
code with kopilot.serving, so the server's detections can be checked against it."""

from __future__ import annotations

import io
import pathlib

import numpy as np
import onnxruntime
from PIL import Image


def iou(a: list[float], b: list[float]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


class Reference:
    def __init__(self, model: pathlib.Path, size: int) -> None:
        self.session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        self.size = size

    def detect(
        self, data: bytes, *, conf: float, iou_threshold: float
    ) -> list[tuple[int, float, list[float]]]:
        """(class id, score, [x1, y1, x2, y2] in original pixels), best first."""
        image = Image.open(io.BytesIO(data)).convert("RGB")
        w, h = image.size
        r = min(self.size / w, self.size / h)
        nw, nh = round(w * r), round(h * r)
        left, top = round((self.size - nw) / 2 - 0.1), round((self.size - nh) / 2 - 0.1)
        canvas = Image.new("RGB", (self.size, self.size), (114, 114, 114))
        canvas.paste(image.resize((nw, nh), Image.Resampling.BILINEAR), (left, top))
        x = (np.asarray(canvas, np.float32) / 255.0).transpose(2, 0, 1)[None]
        name = self.session.get_inputs()[0].name
        rows = self.session.run(None, {name: np.ascontiguousarray(x)})[0][0].T
        candidates = []
        for row in rows:
            cls = int(np.argmax(row[4:]))
            score = float(row[4 + cls])
            if score > conf:
                cx, cy, bw, bh = (float(v) for v in row[:4])
                candidates.append(
                    (cls, score, [cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])
                )
        candidates.sort(key=lambda c: -c[1])
        kept: list[tuple[int, float, list[float]]] = []
        for c in candidates:
            if all(k[0] != c[0] or iou(k[2], c[2]) <= iou_threshold for k in kept):
                kept.append(c)
        out = []
        for cls, score, (x1, y1, x2, y2) in kept:
            box = [
                min(max((x1 - left) / r, 0), w),
                min(max((y1 - top) / r, 0), h),
                min(max((x2 - left) / r, 0), w),
                min(max((y2 - top) / r, 0), h),
            ]
            out.append((cls, score, box))
        return out
