"""Output decoding: confidence filter, NMS, both YOLO layouts, mapping back to the image."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kopilot.serving import postprocessing, preprocessing


def iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@st.composite
def box_sets(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = draw(st.integers(0, 25))
    corners = draw(hnp.arrays(np.float32, (n, 2), elements=st.floats(0, 100, width=32)))
    sizes = draw(hnp.arrays(np.float32, (n, 2), elements=st.floats(1, 60, width=32)))
    scores = draw(hnp.arrays(np.float32, (n,), elements=st.floats(0, 1, width=32)))
    classes = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, 2)))
    return np.concatenate([corners, corners + sizes], axis=1), scores, classes


@settings(max_examples=150, deadline=None)
@given(box_sets(), st.floats(0.1, 0.9))
def test_nms_keeps_no_overlapping_pair_and_drops_only_covered_boxes(
    boxes_scores_classes: tuple[np.ndarray, np.ndarray, np.ndarray], threshold: float
) -> None:
    boxes, scores, classes = boxes_scores_classes
    kept = postprocessing.class_aware_nms(boxes, scores, classes, threshold)
    kept_set = set(kept.tolist())
    assert len(kept_set) == len(kept)
    assert list(scores[kept]) == sorted(scores[kept], reverse=True)
    for i in kept:
        for j in kept:
            if i < j and classes[i] == classes[j]:
                assert iou(boxes[i], boxes[j]) <= threshold + 1e-5
    for d in set(range(len(boxes))) - kept_set:
        assert any(
            classes[k] == classes[d]
            and scores[k] >= scores[d]
            and iou(boxes[k], boxes[d]) > threshold - 1e-5
            for k in kept
        ), f"box {d} was dropped without a covering kept box"


THRESHOLDS = postprocessing.Thresholds(confidence=0.25, iou=0.45, max_detections=300)
IDENTITY = preprocessing.Letterbox(width=640, height=640, scale=1.0, pad_x=0, pad_y=0)


def classic_output(rows: list[tuple[float, float, float, float, list[float]]]) -> np.ndarray:
    """[4 + classes, N] from (cx, cy, w, h, class scores) rows."""
    return np.array([[*r[:4], *r[4]] for r in rows], np.float32).T


def test_classic_layout_filters_suppresses_per_class_and_converts_boxes() -> None:
    output = classic_output(
        [
            (100, 100, 40, 40, [0.9, 0.1]),  # kept: best class 0
            (102, 101, 40, 40, [0.8, 0.0]),  # same place, same class: suppressed
            (102, 101, 40, 40, [0.0, 0.7]),  # same place, class 1: kept
            (300, 300, 20, 10, [0.2, 0.1]),  # under the threshold
            (500, 500, 10, 10, [0.0, 0.26]),  # just above it
        ]
    )
    found = postprocessing.detections(
        output,
        layout=postprocessing.OutputLayout.CLASSIC,
        letterbox=IDENTITY,
        thresholds=THRESHOLDS,
        num_classes=2,
    )
    assert [(d.class_id, round(d.score, 2)) for d in found] == [(0, 0.9), (1, 0.7), (1, 0.26)]
    assert (found[0].x1, found[0].y1, found[0].x2, found[0].y2) == (80, 80, 120, 120)


def test_max_detections_caps_the_best() -> None:
    output = classic_output([(i * 50 + 25, 25, 10, 10, [0.3 + i / 100]) for i in range(10)])
    capped = postprocessing.Thresholds(confidence=0.25, iou=0.45, max_detections=3)
    found = postprocessing.detections(
        output,
        layout=postprocessing.OutputLayout.CLASSIC,
        letterbox=IDENTITY,
        thresholds=capped,
        num_classes=1,
    )
    assert [round(d.score, 2) for d in found] == [0.39, 0.38, 0.37]


def test_end_to_end_layout_needs_no_nms_and_drops_unknown_classes() -> None:
    output = np.array(
        [
            [10, 10, 50, 50, 0.9, 1],
            [12, 12, 50, 50, 0.8, 1],  # overlapping, same class: kept (the model did NMS already)
            [0, 0, 5, 5, 0.1, 0],  # under the threshold
            [0, 0, 5, 5, 0.95, 7],  # class 7 of 2: dropped
        ],
        np.float32,
    )
    found = postprocessing.detections(
        output,
        layout=postprocessing.OutputLayout.END_TO_END,
        letterbox=IDENTITY,
        thresholds=THRESHOLDS,
        num_classes=2,
    )
    assert [(d.class_id, round(d.score, 2)) for d in found] == [(1, 0.9), (1, 0.8)]


def test_non_finite_outputs_never_become_detections() -> None:
    output = classic_output(
        [(np.nan, 10, 10, 10, [0.9]), (50, 50, 10, 10, [np.nan]), (80, 80, 10, 10, [0.5])]
    )
    found = postprocessing.detections(
        output,
        layout=postprocessing.OutputLayout.CLASSIC,
        letterbox=IDENTITY,
        thresholds=THRESHOLDS,
        num_classes=1,
    )
    assert [round(d.score, 2) for d in found] == [0.5]


@settings(max_examples=100, deadline=None)
@given(
    st.integers(16, 4000),
    st.integers(16, 4000),
    st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1)),
)
def test_unletterbox_inverts_the_letterbox_mapping(
    width: int, height: int, fractions: tuple[float, float, float, float]
) -> None:
    fx1, fy1, fx2, fy2 = fractions
    size = 320
    scale = min(size / width, size / height)
    pad_x = round((size - round(width * scale)) / 2 - 0.1)
    pad_y = round((size - round(height * scale)) / 2 - 0.1)
    box = preprocessing.Letterbox(width=width, height=height, scale=scale, pad_x=pad_x, pad_y=pad_y)
    original = np.array([[fx1 * width, fy1 * height, fx2 * width, fy2 * height]], np.float32)
    in_input = original * scale + np.array([pad_x, pad_y, pad_x, pad_y], np.float32)
    back = postprocessing.unletterbox(in_input, box)
    assert np.allclose(back, original, atol=max(width, height) * 1e-5 + 1e-3)


def test_boxes_outside_the_image_are_clipped() -> None:
    box = preprocessing.Letterbox(width=100, height=50, scale=1.0, pad_x=0, pad_y=25)
    back = postprocessing.unletterbox(np.array([[-10, 0, 150, 100]], np.float32), box)
    assert back.tolist() == [[0, 0, 100, 50]]
