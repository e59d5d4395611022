"""Tiny ONNX models built with the `onnx` package, in the output layouts the server serves.

They are real ONNX graphs run by the real ONNX Runtime, only small: fast to load, fast to run,
so tests of the HTTP layer and the batcher do not pay for a real detector.
"""

from __future__ import annotations

import pathlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = [helper.make_opsetid("", 17)]


def _save(graph: onnx.GraphProto, path: pathlib.Path, metadata: dict[str, str]) -> pathlib.Path:
    model = helper.make_model(graph, opset_imports=OPSET)
    model.ir_version = 8
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def classic_detector(
    path: pathlib.Path,
    *,
    classes: int = 3,
    size: int = 64,
    batch: int | str = "batch",
    seed: int = 0,
    only_one_image: bool = False,
) -> pathlib.Path:
    """A conv net with YOLOv8's output layout `[batch, 4 + classes, anchors]`.

    One 8x8/stride-8 convolution gives an (size/8)^2 anchor grid; boxes are sigmoid * size (centre
    x, y, width, height in input pixels), class scores are sigmoids. Outputs depend on the pixels.
    With `only_one_image` the batch axis is declared dynamic but the graph reshapes to a batch of
    1, so any larger batch fails at run time (as some hand-made exports do).
    """
    rng = np.random.default_rng(seed)
    channels = 4 + classes
    anchors = (size // 8) ** 2
    weight = rng.normal(0, 0.5, size=(channels, 3, 8, 8)).astype(np.float32)
    bias = rng.normal(0, 1.0, size=(channels,)).astype(np.float32)
    scale = np.ones((1, channels, 1), np.float32)
    scale[0, :4, 0] = [size, size, size / 3, size / 3]
    graph = helper.make_graph(
        [
            helper.make_node(
                "Conv", ["images", "w", "b"], ["conv"], kernel_shape=[8, 8], strides=[8, 8]
            ),
            helper.make_node("Reshape", ["conv", "shape"], ["flat"]),
            helper.make_node("Sigmoid", ["flat"], ["sig"]),
            helper.make_node("Mul", ["sig", "scale"], ["output0"]),
        ],
        "classic",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [batch, channels, anchors])],
        initializer=[
            numpy_helper.from_array(weight, "w"),
            numpy_helper.from_array(bias, "b"),
            numpy_helper.from_array(
                np.array([1 if only_one_image else 0, channels, anchors], np.int64), "shape"
            ),
            numpy_helper.from_array(scale, "scale"),
        ],
    )
    names = {i: f"thing{i}" for i in range(classes)}
    return _save(
        graph, path, {"task": "detect", "names": repr(names), "imgsz": f"[{size}, {size}]"}
    )


def end_to_end_detector(
    path: pathlib.Path, *, rows: np.ndarray, size: int = 32, names: dict[int, str] | None = None
) -> pathlib.Path:
    """An NMS-free detector with the `[batch, N, 6]` layout (x1, y1, x2, y2, score, class).

    It returns `rows` for every image, except that each score is multiplied by the image's mean
    pixel value, so a white image scores as `rows` says and a black one scores zero.
    """
    mask = np.zeros((1, *rows.shape), np.float32)
    mask[0, :, 4] = 1.0
    keep = 1.0 - mask
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=1),
            helper.make_node("Reshape", ["mean", "col"], ["m"]),  # [batch, 1, 1]
            helper.make_node("Mul", ["m", "mask"], ["score_scale"]),
            helper.make_node("Add", ["score_scale", "keep"], ["factor"]),
            helper.make_node("Mul", ["factor", "rows"], ["output0"]),
        ],
        "end2end",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", rows.shape[0], 6])],
        initializer=[
            numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "col"),
            numpy_helper.from_array(mask, "mask"),
            numpy_helper.from_array(keep.astype(np.float32), "keep"),
            numpy_helper.from_array(rows[None].astype(np.float32), "rows"),
        ],
    )
    metadata = {"task": "detect", "imgsz": f"[{size}, {size}]"}
    if names is not None:
        metadata["names"] = repr(names)
    return _save(graph, path, metadata)


def classifier(path: pathlib.Path, *, size: int = 32) -> pathlib.Path:
    """Not a detector: `[batch, 3, H, W]` in, `[batch, 3]` (per-channel means) out."""
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["images"], ["mean"], axes=[2, 3], keepdims=0),
            helper.make_node("Softmax", ["mean"], ["probs"], axis=1),
        ],
        "classifier",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 3])],
    )
    return _save(graph, path, {})
