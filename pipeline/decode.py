"""Image bytes -> pixels, as fast as the host allows: the loader's decode step.

JPEGs decode with simplejpeg (libjpeg-turbo without PIL's per-image overhead): on one core of the
development machine it decoded a 384 x 384 JPEG in 3.7 ms against 4.5 ms for torchvision.io.decode_jpeg
and 6.5 ms for PIL (benchmarks/loader.py measures the loader against this limit). Its pixels are
PIL's to the bit (same library, same integer IDCT and upsampling; tests/test_loader_uint8.py checks),
including the reduced-size decode of data.draft_size, which here picks PIL's draft scale (1/2, 1/4 or
1/8 only). Anything simplejpeg cannot read (PNG, CMYK JPEG, damaged bytes) goes through PIL, which
decodes what it can and raises for the rest, as before.

When the decoded image is already what the model's processor would make of it (shards built at the
training resolution, `coir data shards --resize square --size S`), the pixels go straight to a uint8
tensor: no PIL image, no resize, and, given the image's place in its batch (`out`), not even a copy:
the JPEG decodes into the batch (pipeline/data.py).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import simplejpeg
import torch
from PIL import Image

from coir.pipeline.models.pixels import to_uint8

JPEG_MAGIC = b"\xff\xd8"


def draft_scale(width: int, height: int, draft: int) -> int:
    """PIL's JPEG draft reduction for a request of draft x draft: the largest of 8, 4, 2, 1 that keeps
    both sides at least `draft` (JpegImagePlugin.draft)."""
    fits = min(width // draft, height // draft)
    return next(s for s in (8, 4, 2, 1) if fits >= s)


def decode_jpeg(data: bytes, draft: int | None, out: np.ndarray | None = None) -> np.ndarray | None:
    """[H, W, 3] uint8 RGB of JPEG bytes (reduced as PIL's draft(draft) would), or None when simplejpeg
    cannot decode them (the caller falls back to PIL). Written into `out` (and returned as it) when
    the decoded image has out's shape."""
    if not data.startswith(JPEG_MAGIC):
        return None
    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
        if colorspace not in ("YCbCr", "Gray", "RGB"):
            return None  # CMYK / YCCK: PIL's conversion
        options: dict[str, Any] = {}
        if draft:
            scale = draft_scale(width, height, draft)
            if scale > 1:
                width, height = -(-width // scale), -(-height // scale)
                options = {"min_width": width, "min_height": height}
        if out is not None and out.shape == (height, width, 3):
            options["buffer"] = out
        return simplejpeg.decode_jpeg(data, "RGB", **options)
    except ValueError:
        return None


def open_pil(data: bytes, mode: str, draft: int | None) -> Image.Image:
    """The image of any bytes PIL reads, converted to `mode` (JPEGs drafted to `draft` when set)."""
    with Image.open(io.BytesIO(data)) as img:
        if draft and img.format == "JPEG":
            img.draft(mode, (draft, draft))
        img.load()
        return img.convert(mode)


class PixelDecoder:
    """bytes -> PIL image (for augmentation and resizing) or uint8 tensor [3, H, W] via the processor's
    host part, skipping PIL when the decoded image passes through the processor unchanged."""

    def __init__(self, processor: Any, mode: str = "RGB", draft: int | None = None) -> None:
        self.processor, self.mode, self.draft = processor, mode, draft

    def _array(self, data: bytes, out: np.ndarray | None = None) -> np.ndarray | None:
        return decode_jpeg(data, self.draft, out) if self.mode == "RGB" else None

    def pil(self, data: bytes) -> Image.Image:
        array = self._array(data)
        return Image.fromarray(array) if array is not None else open_pil(data, self.mode, self.draft)

    def tensor(self, data: bytes, out: np.ndarray | None = None) -> torch.Tensor | None:
        """uint8 [3, H, W] as the model's processor makes it, decoded once. None when it was decoded
        straight into `out` ([S, S, 3], the image's place in its batch): a JPEG that decodes to out's
        size and passes through the processor at that size."""
        if out is not None and not self.processor.passes_through(out.shape[1], out.shape[0]):
            out = None  # an image of out's size would still be resized: never decode into it
        array = self._array(data, out)
        if array is None:
            return self.processor.image(open_pil(data, self.mode, self.draft))
        if out is not None and array.ctypes.data == out.ctypes.data:
            return None
        height, width = array.shape[:2]
        if self.processor.passes_through(width, height):
            return to_uint8(array)
        return self.processor.image(Image.fromarray(array))
