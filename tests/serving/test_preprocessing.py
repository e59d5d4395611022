"""Decoding with limits and Ultralytics-style letterboxing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from kopilot.serving import errors, preprocessing
from tests.serving import images_util


@pytest.mark.parametrize(
    ("width", "height", "scale", "pad_x", "pad_y"),
    [
        (1280, 720, 0.25, 0, 70),  # landscape: bars above and below
        (720, 1280, 0.25, 70, 0),  # portrait: bars left and right
        (320, 320, 1.0, 0, 0),  # exact fit: no resize
        (100, 50, 3.2, 0, 80),  # upscaled
    ],
)
def test_letterbox_scales_to_fit_and_centres_with_grey(
    width: int, height: int, scale: float, pad_x: int, pad_y: int
) -> None:
    image = Image.new("RGB", (width, height), (255, 0, 0))
    decoded = preprocessing.Decoded(image=image, width=width, height=height)
    prepared = preprocessing.letterbox(decoded, height=320, width=320)
    box = prepared.letterbox
    assert (box.width, box.height, box.pad_x, box.pad_y) == (width, height, pad_x, pad_y)
    assert box.scale == pytest.approx(scale)
    tensor = prepared.tensor
    assert tensor.shape == (3, 320, 320) and tensor.dtype == np.float32
    grey = preprocessing.PAD_VALUE / 255
    if pad_y:
        assert np.allclose(tensor[:, : pad_y - 1, :], grey)
        assert np.allclose(tensor[:, 320 - pad_y + 1 :, :], grey)
    if pad_x:
        assert np.allclose(tensor[:, :, : pad_x - 1], grey)
    centre = tensor[:, 160, 160]
    assert centre == pytest.approx([1.0, 0.0, 0.0])  # RGB order, scaled to [0, 1]


def test_rectangular_inputs_are_supported() -> None:
    decoded = preprocessing.Decoded(image=Image.new("RGB", (640, 640)), width=640, height=640)
    prepared = preprocessing.letterbox(decoded, height=384, width=640)
    assert prepared.tensor.shape == (3, 384, 640)
    assert (prepared.letterbox.pad_x, prepared.letterbox.pad_y) == (128, 0)


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("L", "PNG"), ("RGBA", "PNG"), ("P", "PNG"), ("CMYK", "JPEG"), ("I;16", "PNG")],
)
def test_any_pillow_mode_becomes_rgb(mode: str, fmt: str) -> None:
    data = images_util.encode(Image.new(mode, (40, 30)), fmt)
    assert preprocessing.decode(data, max_pixels=10_000).image.mode == "RGB"


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    data = images_util.encode(Image.new("RGB", (40, 20)), "JPEG", exif=exif)
    decoded = preprocessing.decode(data, max_pixels=10_000)
    assert decoded.image.size == (decoded.width, decoded.height) == (20, 40)


@pytest.mark.parametrize(
    ("data", "code", "status"),
    [
        (b"", "empty_body", 400),
        (b"hello, not an image", "not_an_image", 400),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not_an_image", 400),
    ],
)
def test_bad_bytes_are_refused_with_a_code(data: bytes, code: str, status: int) -> None:
    with pytest.raises(errors.BadRequestError) as caught:
        preprocessing.decode(data, max_pixels=10_000_000)
    assert (caught.value.code, caught.value.status) == (code, status)
    assert caught.value.hint


def test_truncated_jpeg_is_refused(images: dict[str, bytes]) -> None:
    data = images["zidane.jpg"]
    with pytest.raises(errors.BadRequestError) as caught:
        preprocessing.decode(data[: len(data) // 2], max_pixels=10_000_000)
    assert caught.value.code == "image_truncated"
    assert "truncated" in str(caught.value)


def test_fifty_megapixels_are_refused_from_the_header() -> None:
    data = images_util.png_claiming(10_000, 5_000)  # 50 MP claimed, 1 pixel of data
    with pytest.raises(errors.BadRequestError) as caught:
        preprocessing.decode(data, max_pixels=40_000_000)
    assert (caught.value.code, caught.value.status) == ("image_too_large", 413)
    assert "10000x5000" in str(caught.value)


def test_a_real_photo_decodes_at_its_size(images: dict[str, bytes]) -> None:
    prepared = preprocessing.prepare(images["bus.jpg"], height=320, width=320, max_pixels=10**7)
    assert (prepared.letterbox.width, prepared.letterbox.height) == (810, 1080)
    assert float(prepared.tensor.min()) >= 0.0 and float(prepared.tensor.max()) <= 1.0


@pytest.mark.parametrize("name", ["zidane.jpg", "bus.jpg"])
def test_jpeg_draft_decoding_keeps_geometry_and_nearly_the_same_pixels(
    images: dict[str, bytes], name: str
) -> None:
    exact = preprocessing.prepare(images[name], height=320, width=320, max_pixels=10**7)
    fast = preprocessing.prepare(
        images[name], height=320, width=320, max_pixels=10**7, jpeg_draft=True
    )
    drafted = preprocessing.decode(images[name], max_pixels=10**7, fit=(320, 320))
    assert drafted.image.width < drafted.width  # libjpeg really decoded at a reduced scale
    assert fast.letterbox == exact.letterbox
    assert float(np.abs(fast.tensor - exact.tensor).mean()) < 0.02


def test_jpeg_draft_follows_exif_rotation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = images_util.encode(Image.new("RGB", (1600, 800)), "JPEG", exif=exif)
    decoded = preprocessing.decode(data, max_pixels=10**7, fit=(320, 320))
    assert (decoded.width, decoded.height) == (800, 1600)
    assert decoded.image.size == (200, 400)  # 1/4 scale, then rotated upright
    prepared = preprocessing.letterbox(decoded, height=320, width=320)
    assert prepared.letterbox.scale == pytest.approx(0.2)
