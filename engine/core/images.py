"""Uploaded pictures: refused by the size their header announces, before any pixel is decoded.

PIL's Image.open reads only the header; the pixels are decoded by load(), convert() or resize().
A 9000x9000 PNG of one colour is a few kB on disk and 81 million pixels (243 MB as RGB) once
decoded, so the size is checked between the two.

MAX_IMAGE_PIXELS is also PIL's decompression-bomb bound for the whole process (set when this
module is imported, which every engine package that reads pictures does): Gradio decodes a
sketchpad's upload with PIL before the engine sees it. PIL warns above the bound and refuses above
twice the bound (DecompressionBombError) from the header alone.
"""
from __future__ import annotations

import re

from PIL import Image

from .errors import UserInputError

MAX_IMAGE_PIXELS = 4096 * 4096  # 16.8 M pixels; PIL's own default is 89.5 M (and refuses above 179 M)
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS

_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


def check_pixels(name: str, width: int, height: int, max_pixels: int = MAX_IMAGE_PIXELS) -> None:
    if width * height > max_pixels:
        raise UserInputError(f"{name} is {width}x{height} = {width * height:,} pixels: the limit is "
                             f"{max_pixels:,} pixels (e.g. 4096x4096). Upload a smaller picture.")


def open_image(source, name: str, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """The picture at `source` (a path or a binary file), decoded only once its header's size is
    within max_pixels; anything PIL cannot read is refused naming `name`."""
    try:
        image = Image.open(source)
    except Image.DecompressionBombError as exc:  # above twice the process bound: PIL stops at the header
        found = _BOMB_PIXELS.search(str(exc))
        size = f"{int(found.group(1)):,} pixels" if found else f"more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels"
        raise UserInputError(f"{name} is {size}: the limit is {max_pixels:,} pixels (e.g. 4096x4096). "
                             "Upload a smaller picture.") from None
    except (OSError, ValueError) as exc:
        raise UserInputError(f"{name} is not a picture that can be read (PNG, JPEG, WebP).") from exc
    try:
        check_pixels(name, *image.size, max_pixels=max_pixels)
        image.load()
    except UserInputError:
        image.close()
        raise
    except (OSError, ValueError) as exc:  # a header that lies about the data after it
        image.close()
        raise UserInputError(f"{name} is not a picture that can be read (PNG, JPEG, WebP).") from exc
    return image


__all__ = ["MAX_IMAGE_PIXELS", "check_pixels", "open_image"]
