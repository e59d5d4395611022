"""From image bytes to the model's input tensor: decode (with limits), then YOLO letterbox.

Letterbox as Ultralytics does it: scale the image to fit the square input keeping its aspect
ratio, pad the rest evenly with grey (114), RGB, CHW, float32 in [0, 1]. `Letterbox` records the
scale and padding so boxes can be mapped back to the original image.
"""

from __future__ import annotations

import dataclasses
import io
import math
import struct

import numpy as np
import numpy.typing as npt
import PIL
from PIL import Image, ImageOps

from kopilot.serving import errors

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


def decode(data: bytes, *, max_pixels: int, fit: tuple[int, int] | None = None) -> Decoded:
    """Decode `data` into an upright RGB image, refusing what is not an image, truncated or too
    large.

    The pixel count is checked from the header, before any pixel is decoded, so a 50-megapixel
    upload costs no memory. With `fit` = (height, width), a JPEG that will be shrunk at least 2x
    to fit is decoded at 1/2, 1/4 or 1/8 scale by libjpeg itself (Pillow's `draft`), never below
    the size the letterbox needs: several times faster, and a smooth (area-like) downscale.
    """
    if not data:
        raise errors.BadRequestError(
            "the request carries no image bytes",
            code="empty_body",
            hint="send a JPEG/PNG/WebP/BMP image as the body, as a multipart field, or base64 JSON",
        )
    too_large = errors.BadRequestError(
        f"the image is over this server's limit of {max_pixels / 1e6:.1f} megapixels",
        code="image_too_large",
        status=413,
        hint="downscale the image before sending it (the model sees at most its input size)",
    )
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise too_large from e
    except PIL.UnidentifiedImageError as e:
        raise errors.BadRequestError(
            f"the body is not an image Pillow can read ({len(data)} bytes)",
            code="not_an_image",
            hint="send a JPEG, PNG, WebP, BMP, GIF or TIFF image",
        ) from e
    except _DECODE_FAULTS as e:
        raise errors.BadRequestError(
            f"the image header is malformed: {e}",
            code="not_an_image",
            hint="send a valid JPEG, PNG, WebP, BMP, GIF or TIFF image",
        ) from e
    width, height = image.size
    if width <= 0 or height <= 0:
        raise errors.BadRequestError(
            f"the image has no pixels ({width}x{height})", code="empty_image"
        )
    if width * height > max_pixels:
        raise errors.BadRequestError(
            f"the image is {width}x{height} = {width * height / 1e6:.1f} megapixels, over this "
            f"server's limit of {max_pixels / 1e6:.1f} megapixels",
            code=too_large.code,
            status=too_large.status,
            hint=too_large.hint,
        )
    try:
        orientation = image.getexif().get(0x0112, 1)
        sideways = orientation in (5, 6, 7, 8)
        up_w, up_h = (height, width) if sideways else (width, height)
        if fit is not None and image.format == "JPEG":
            scale = min(fit[0] / up_h, fit[1] / up_w)
            if scale <= 0.5:
                image.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))
        image.load()
        upright = ImageOps.exif_transpose(image)
        return Decoded(image=upright.convert("RGB"), width=up_w, height=up_h)
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
    data: bytes, *, height: int, width: int, max_pixels: int, jpeg_draft: bool = False
) -> PreparedImage:
    """Decode and letterbox in one step (what a request handler runs off the event loop)."""
    fit = (height, width) if jpeg_draft else None
    return letterbox(decode(data, max_pixels=max_pixels, fit=fit), height=height, width=width)
