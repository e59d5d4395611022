"""Loading a model: what is a detector, its layout, class names, batch axis, providers."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from kopilot.serving import detectors, errors, postprocessing, preprocessing, settings
from tests.serving import onnx_models


def load(path: pathlib.Path, **kwargs: object) -> detectors.Detector:
    return detectors.load(settings.ModelSettings(path=path, **kwargs))  # type: ignore[arg-type]


def test_the_real_yolov8_export_is_a_classic_detector_with_named_classes(
    yolo_model: pathlib.Path,
) -> None:
    info = load(yolo_model).info
    assert info.layout is postprocessing.OutputLayout.CLASSIC
    assert len(info.class_names) == 18 and info.class_name(12) == "FACE_MALE"
    assert (info.input_height, info.input_width) == (320, 320)  # from the `imgsz` metadata
    assert info.fixed_batch is None  # the export has a dynamic batch axis
    assert "CPUExecutionProvider" in info.providers


def test_a_batch_gives_each_image_what_it_gets_alone(
    yolo_model: pathlib.Path, images: dict[str, bytes]
) -> None:
    detector = load(yolo_model)
    tensors = [
        preprocessing.prepare(data, height=320, width=320, max_pixels=10**7).tensor
        for data in images.values()
    ]
    together = detector.run(np.stack(tensors))
    for i, tensor in enumerate(tensors):
        alone = detector.run(tensor[None])[0]
        assert np.allclose(together[i], alone, atol=1e-3)


def test_an_end_to_end_export_is_recognised(tmp_path: pathlib.Path) -> None:
    rows = np.array([[1, 2, 10, 12, 0.9, 0]], np.float32)
    info = load(
        onnx_models.end_to_end_detector(tmp_path / "e2e.onnx", rows=rows, names={0: "cat"})
    ).info
    assert info.layout is postprocessing.OutputLayout.END_TO_END
    assert info.class_names == ("cat",)


def test_an_end_to_end_export_without_names_gets_numbered_classes(tmp_path: pathlib.Path) -> None:
    rows = np.array([[1, 2, 10, 12, 0.9, 4]], np.float32)
    info = load(onnx_models.end_to_end_detector(tmp_path / "e2e.onnx", rows=rows)).info
    assert info.num_classes is None and info.class_name(4) == "class_4"


def test_a_fixed_batch_axis_is_reported_and_padded(tmp_path: pathlib.Path) -> None:
    detector = load(onnx_models.classic_detector(tmp_path / "fixed.onnx", batch=2))
    assert detector.info.fixed_batch == 2
    out = detector.run(np.zeros((1, 3, 64, 64), np.float32))  # padded to 2, trimmed back to 1
    assert out.shape == (1, 7, 64)
    with pytest.raises(errors.InferenceError, match="exceeds the model's fixed batch 2"):
        detector.run(np.zeros((3, 3, 64, 64), np.float32))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (onnx_models.classifier, "a classifier or another kind of model"),
        (lambda p: p.write_bytes(b"this is not onnx") and p, "cannot load this file as a model"),
        (lambda p: p.with_name("missing.onnx"), "model file not found"),
    ],
)
def test_what_is_not_a_detector_is_refused_clearly(
    tmp_path: pathlib.Path, make: object, message: str
) -> None:
    path = make(tmp_path / "model.onnx")  # type: ignore[operator]
    with pytest.raises(errors.ModelError, match=message):
        load(path)


def test_a_detector_whose_names_disagree_with_its_output_is_refused(tmp_path: pathlib.Path) -> None:
    path = onnx_models.classic_detector(tmp_path / "seg.onnx", classes=3)
    import onnx

    model = onnx.load(str(path))
    for entry in model.metadata_props:
        if entry.key == "names":
            entry.value = "{0: 'a', 1: 'b'}"  # 2 names, 3 class scores: a seg/pose-like mismatch
    onnx.save(model, str(path))
    with pytest.raises(
        errors.ModelError, match="3 class scores per anchor but the metadata names 2"
    ):
        load(path)


def test_an_unavailable_execution_provider_is_refused(tiny_classic: pathlib.Path) -> None:
    with pytest.raises(errors.ModelError, match="not in this ONNX Runtime build"):
        load(tiny_classic, providers=("NoSuchExecutionProvider",))


def test_default_providers_prefer_gpus_when_installed() -> None:
    available = ["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"]
    assert detectors.choose_providers((), available) == list(detectors.PREFERRED_PROVIDERS)
    assert detectors.choose_providers((), ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        ("{0: 'person', 1: 'bicycle'}", ("person", "bicycle")),
        ('["a", "b"]', ("a", "b")),
        ('{"1": "b", "0": "a"}', ("a", "b")),
        (None, ()),
    ],
)
def test_class_names_metadata_forms(raw: str | None, names: tuple[str, ...]) -> None:
    assert detectors.parse_class_names(raw) == names


@pytest.mark.parametrize("raw", ["{0: 'a', 2: 'c'}", "not a literal {", "42"])
def test_bad_class_names_metadata_is_a_model_error(raw: str) -> None:
    with pytest.raises(errors.ModelError, match="names"):
        detectors.parse_class_names(raw)


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [
        ("max 100000\n", None),
        ("200000 100000\n", 2),
        ("150000 100000\n", 2),
        ("50000 100000\n", 1),
        ("garbage", None),
    ],
)
def test_usable_cpus_respects_a_cgroup_quota(
    tmp_path: pathlib.Path, cpu_max: str, expected: int | None
) -> None:
    import os

    path = tmp_path / "cpu.max"
    path.write_text(cpu_max)
    affinity = len(os.sched_getaffinity(0))
    want = affinity if expected is None else min(affinity, expected)
    assert detectors.usable_cpus(path) == want
    assert detectors.usable_cpus(tmp_path / "missing") == affinity
