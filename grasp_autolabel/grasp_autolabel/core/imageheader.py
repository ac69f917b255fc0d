"""Image sizes from PNG and JPEG headers, checked before anything is decoded.

A 0.5 MB PNG can declare 16000 x 16000 pixels and take a gigabyte to decode: every image the
package reads from a file or a message is measured here first and refused above
``max_pixels()`` (``GRASP_AUTOLABEL_MAX_PIXELS``, default 4096 x 4096, which fits 4K RGB-D).
"""
from __future__ import annotations

import os

__all__ = ['encoded_size', 'check_pixels', 'max_pixels', 'PNG_SIGNATURE']

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def max_pixels() -> int:
    """Return the largest image (width x height) the package decodes."""
    try:
        return max(1, int(os.environ.get('GRASP_AUTOLABEL_MAX_PIXELS', 4096 * 4096)))
    except ValueError:
        return 4096 * 4096


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in _SOF:
            return int.from_bytes(data[i + 7:i + 9], 'big'), int.from_bytes(data[i + 5:i + 7],
                                                                            'big')
        if marker in (0xD8, 0x01, 0xFF) or 0xD0 <= marker <= 0xD7:
            i += 1 if marker == 0xFF else 2
            continue
        i += 2 + int.from_bytes(data[i + 2:i + 4], 'big')
    return None


def encoded_size(data: bytes) -> tuple[int, int] | None:
    """Return ``(width, height)`` from a PNG or JPEG header; None: neither, or cut short."""
    data = bytes(data[:65536]) if len(data) > 65536 else bytes(data)
    if data[:8] == PNG_SIGNATURE:
        if len(data) < 24 or data[12:16] != b'IHDR':
            return None
        return int.from_bytes(data[16:20], 'big'), int.from_bytes(data[20:24], 'big')
    if data[:2] == b'\xff\xd8':
        return _jpeg_size(data)
    return None


def check_pixels(width: int, height: int, where: str) -> None:
    """Raise ValueError naming ``where`` for an empty image or one above :func:`max_pixels`."""
    if width <= 0 or height <= 0:
        raise ValueError(f'{where}: declares an empty image ({width}x{height})')
    if width * height > max_pixels():
        raise ValueError(f'{where}: declares {width}x{height} pixels, more than the '
                         f'{max_pixels()} this tool decodes (GRASP_AUTOLABEL_MAX_PIXELS)')
