"""Image bytes for tests: encoded in memory with Pillow, plus crafted bad files."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def encode(image: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def solid(width: int, height: int, color: tuple[int, int, int] = (255, 255, 255)) -> bytes:
    return encode(Image.new("RGB", (width, height), color))


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims `width` x `height` (valid CRC), e.g. 50 megapixels.

    The pixel data is a 1x1 image's, so decoding would fail; a server must refuse it from the
    header alone, without allocating width*height pixels.
    """
    data = solid(1, 1)
    ihdr = data.index(b"IHDR")
    fields = struct.pack(">II", width, height) + data[ihdr + 12 : ihdr + 17]
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + fields))
    return data[: ihdr + 4] + fields + crc + data[ihdr + 21 :]
