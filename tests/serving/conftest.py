"""Fixtures for the serving tests: the real YOLOv8 export from the nudenet wheel, tiny models."""

from __future__ import annotations

import importlib.util
import os
import pathlib

import pytest

from tests.serving import onnx_models

DATA = pathlib.Path(__file__).parent / "data"


def nudenet_model_path() -> pathlib.Path | None:
    """`320n.onnx` from the installed nudenet wheel (found without importing nudenet's code)."""
    spec = importlib.util.find_spec("nudenet")
    if spec is None or spec.origin is None:
        return None
    path = pathlib.Path(spec.origin).parent / "320n.onnx"
    return path if path.is_file() else None


@pytest.fixture(scope="session")
def yolo_model() -> pathlib.Path:
    """A real Ultralytics YOLOv8n detection export (scripts/setup.d/40-serving-model.sh)."""
    path = nudenet_model_path()
    if path is None:
        message = "nudenet's 320n.onnx is missing: run scripts/setup.d/40-serving-model.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def tiny_classic(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return onnx_models.classic_detector(tmp_path_factory.mktemp("models") / "classic.onnx")


@pytest.fixture(scope="session")
def images() -> dict[str, bytes]:
    """Ultralytics' sample images (see data/SOURCE.txt)."""
    return {name: (DATA / name).read_bytes() for name in ("zidane.jpg", "bus.jpg")}
