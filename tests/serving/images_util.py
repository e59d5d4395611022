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


def png_wide(width: int, height: int = 1, *, complete: bool = True) -> bytes:
    """A greyscale PNG of `width` x `height` black pixels, compressed in a stream (a 39,000,000 x 1
    one is 38 KB, built without holding its 39 MB of pixels). With `complete=False` the pixel
    data is cut after its first 64 bytes: a server that decoded it would call it truncated."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload)
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    packer = zlib.compressobj(9)
    zeros = b"\x00" * (1 << 20)  # each row: filter byte 0, then `width` black pixels
    parts = []
    for _ in range(height):
        for start in range(0, width + 1, len(zeros)):
            parts.append(packer.compress(zeros[: min(len(zeros), width + 1 - start)]))
    idat = b"".join(parts) + packer.flush()
    if not complete:
        idat = idat[:64]
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
