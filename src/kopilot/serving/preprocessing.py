"""From image bytes to the model's input tensor: decode (with limits), then YOLO letterbox.

Letterbox as Ultralytics does it: scale the image to fit the square input keeping its aspect
ratio, pad the rest evenly with grey (114), RGB, CHW, float32 in [0, 1]. `Letterbox` records the
scale and padding so boxes can be mapped back to the original image.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import struct

import numpy as np
import numpy.typing as npt
import PIL
from PIL import Image, ImageOps

from kopilot.serving import errors, settings

PAD_VALUE = 114
# What Pillow's format plugins raise on malformed data (a fuzzed body reaches every one of them).
_DECODE_FAULTS: tuple[type[Exception], ...] = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    struct.error,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Letterbox:
    """How an image of `width` x `height` was placed in the square model input."""

    width: int
    height: int
    scale: float
    pad_x: float
    pad_y: float


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Decoded:
    """An upright RGB image; `width` x `height` is the original's upright size, which `image`
    may be smaller than when the JPEG decoder already scaled it down (`decode(fit=...)`)."""

    image: Image.Image
    width: int
    height: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PreparedImage:
    """A decoded, letterboxed image: `tensor` is CHW float32, ready to be stacked into a batch."""

    tensor: npt.NDArray[np.float32]
    letterbox: Letterbox


def readable_formats() -> frozenset[str]:
    """The image formats this Pillow can open (the names `--formats` takes)."""
    Image.init()
    return frozenset(Image.OPEN)


def _refused_format(data: bytes, allowed: tuple[str, ...]) -> str | None:
    """The format outside `allowed` whose signature `data` starts with, by Pillow plugins' own
    cheap `_accept` checks on the first 16 bytes (no plugin parses anything): to name what was
    refused. None for bytes no plugin claims and for a malformed image of an allowed format."""
    Image.init()
    prefix = data[:16]
    for name, (_factory, accept) in Image.OPEN.items():
        if name in allowed:
            continue
        with contextlib.suppress(*_DECODE_FAULTS):
            if accept is not None and accept(prefix):
                return name
    return None


# Bytes Pillow holds per pixel of a mode (its storage is 1, 2 or 4 bytes a pixel).
def _bytes_per_pixel(mode: str) -> int:
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation from the metadata read with the header; not `getexif()`, which for
    a PNG decodes the whole image looking for an eXIf chunk after the pixels."""
    raw = image.info.get("exif")
    if not isinstance(raw, bytes | bytearray) or not raw:
        return 1
    exif = Image.Exif()
    exif.load(bytes(raw))
    value = exif.get(0x0112, 1)
    return value if isinstance(value, int) else 1


def decode_cost(mode: str, width: int, height: int, *, rotated: bool = False) -> int:
    """Bytes a decode of `width` x `height` in `mode` allocates: the decoded image, its RGB copy
    when the mode is not RGB, and the upright copy when EXIF says it is rotated or mirrored."""
    per_pixel = _bytes_per_pixel(mode) + (0 if mode == "RGB" else 4) + (4 if rotated else 0)
    return width * height * per_pixel


def decode(
    data: bytes,
    *,
    max_pixels: int,
    fit: tuple[int, int] | None = None,
    max_side: int = settings.MAX_IMAGE_SIDE,
    max_decode_bytes: int = settings.MAX_DECODE_BYTES,
    formats: tuple[str, ...] = settings.IMAGE_FORMATS,
) -> Decoded:
    """Decode `data` into an upright RGB image, refusing what is not an image of an allowed
    format, truncated or too large.

    Only the plugins of `formats` look at the bytes. The size is checked from the header, before
    any pixel is decoded: the pixel count, the longest side, and what the decoder would allocate
    (`decode_cost`), so neither a 50-megapixel upload nor a 39,000,000 x 1 one costs memory.
    With `fit` = (height, width), a JPEG that will be shrunk at least 2x to fit is decoded at
    1/2, 1/4 or 1/8 scale by libjpeg itself (Pillow's `draft`), never below the size the
    letterbox needs: several times faster, and a smooth (area-like) downscale.
    """
    if not data:
        raise errors.BadRequestError(
            "the request carries no image bytes",
            code="empty_body",
            hint="send a JPEG/PNG/WebP/BMP image as the body, as a multipart field, or base64 JSON",
        )
    allowed = ", ".join(formats)
    too_large = errors.BadRequestError(
        f"the image is over this server's limit of {max_pixels / 1e6:.1f} megapixels",
        code="image_too_large",
        status=413,
        hint="downscale the image before sending it (the model sees at most its input size)",
    )
    try:
        image = Image.open(io.BytesIO(data), formats=list(formats))
    except Image.DecompressionBombError as e:
        raise too_large from e
    except PIL.UnidentifiedImageError as e:
        refused = _refused_format(data, formats)
        if refused is not None:
            raise errors.BadRequestError(
                f"{refused} images are not accepted; this server reads {allowed}",
                code="unsupported_format",
                status=415,
                hint=f"convert the image to one of {allowed}",
            ) from e
        raise errors.BadRequestError(
            f"the body is not an image this server reads ({len(data)} bytes; it reads {allowed})",
            code="not_an_image",
            hint=f"send a {allowed} image",
        ) from e
    except _DECODE_FAULTS as e:
        raise errors.BadRequestError(
            f"the image header is malformed: {e}",
            code="not_an_image",
            hint=f"send a valid {allowed} image",
        ) from e
    width, height = image.size

    def refuse(why: str) -> errors.BadRequestError:
        return errors.BadRequestError(
            f"the image is {width}x{height}: {why}",
            code=too_large.code,
            status=too_large.status,
            hint=too_large.hint,
        )

    if width <= 0 or height <= 0:
        raise errors.BadRequestError(
            f"the image has no pixels ({width}x{height})", code="empty_image"
        )
    if width * height > max_pixels:
        raise refuse(
            f"{width * height / 1e6:.1f} megapixels, over this server's limit of "
            f"{max_pixels / 1e6:.1f} megapixels"
        )
    if max(width, height) > max_side:
        raise refuse(f"a side over this server's limit of {max_side} pixels")
    try:
        orientation = _orientation(image)
        sideways = orientation in (5, 6, 7, 8)
        up_w, up_h = (height, width) if sideways else (width, height)
        if fit is not None and image.format == "JPEG":
            scale = min(fit[0] / up_h, fit[1] / up_w)
            if scale <= 0.5:
                image.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))
        cost = decode_cost(image.mode, *image.size, rotated=orientation in range(2, 9))
        if cost > max_decode_bytes:
            raise refuse(
                f"decoding it ({image.mode}) would take {cost / 2**20:.0f} MiB, over this "
                f"server's limit of {max_decode_bytes / 2**20:.0f} MiB per image"
            )
        image.load()
        upright = ImageOps.exif_transpose(image) if orientation in range(2, 9) else image
        rgb = upright if upright.mode == "RGB" else upright.convert("RGB")
        return Decoded(image=rgb, width=up_w, height=up_h)
    except Image.DecompressionBombError as e:
        raise too_large from e
    except _DECODE_FAULTS as e:
        code = "image_truncated" if "truncated" in str(e) else "image_corrupt"
        raise errors.BadRequestError(
            f"the image cannot be decoded: {e}",
            code=code,
            hint="the file is damaged or cut short; send the complete image file",
        ) from e


def letterbox(decoded: Decoded, *, height: int, width: int) -> PreparedImage:
    """Fit an image into a `height` x `width` input as Ultralytics' LetterBox(auto=False)."""
    src_w, src_h = decoded.width, decoded.height
    scale = min(height / src_h, width / src_w)
    new_w = max(1, min(width, round(src_w * scale)))
    new_h = max(1, min(height, round(src_h * scale)))
    left = round((width - new_w) / 2 - 0.1)
    top = round((height - new_h) / 2 - 0.1)
    resized = decoded.image
    if resized.size != (new_w, new_h):
        resized = resized.resize((new_w, new_h), Image.Resampling.BILINEAR)
    canvas = np.full((height, width, 3), PAD_VALUE, dtype=np.uint8)
    canvas[top : top + new_h, left : left + new_w] = np.asarray(resized, dtype=np.uint8)
    tensor = np.ascontiguousarray(canvas.transpose(2, 0, 1), dtype=np.float32)
    tensor *= np.float32(1.0 / 255.0)
    return PreparedImage(
        tensor=tensor,
        letterbox=Letterbox(width=src_w, height=src_h, scale=scale, pad_x=left, pad_y=top),
    )


def prepare(
    data: bytes,
    *,
    height: int,
    width: int,
    max_pixels: int,
    jpeg_draft: bool = False,
    max_side: int = settings.MAX_IMAGE_SIDE,
    max_decode_bytes: int = settings.MAX_DECODE_BYTES,
    formats: tuple[str, ...] = settings.IMAGE_FORMATS,
) -> PreparedImage:
    """Decode and letterbox in one step (what a request handler runs off the event loop)."""
    fit = (height, width) if jpeg_draft else None
    decoded = decode(
        data,
        max_pixels=max_pixels,
        fit=fit,
        max_side=max_side,
        max_decode_bytes=max_decode_bytes,
        formats=formats,
    )
    return letterbox(decoded, height=height, width=width)
