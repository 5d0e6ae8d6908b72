"""Decode, resize and re-encode images (each distinct image once per build task:
datasets/shards/encoded_images.py).

Images are resized so that their shorter (or longest) side is `size` pixels (never enlarged), or, with
resize=square, to exactly size x size (bicubic, the whole image, as BLIP's transform resizes it): the
training resolution, which the loader decodes straight to uint8 with no resize of its own
(pipeline/decode.py). They are saved as baseline JPEG at a fixed quality: the same file always gives
the same bytes. JPEG sources
are decoded at a reduced DCT scale when that still leaves at least the target size (PIL's draft
mode), which is much cheaper than decoding full size and then shrinking.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

RESIZE_MODES = ("shorter", "longest", "square")
MANIFEST_KEY = "images"  # where a build's manifest records how its images were stored


class ImageProblem(Exception):
    """An input image that cannot be used; `reason` is a short code for errors.parquet."""

    def __init__(self, reason: str, message: str, path: str | Path = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.path = str(path)


@dataclass(frozen=True)
class ImageEncoder:
    resize: str = "shorter"
    size: int = 384
    quality: int = 90

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {RESIZE_MODES}, got {self.resize!r}")
        if self.size < 1:
            raise ValueError(f"size must be >= 1, got {self.size}")

    def manifest(self) -> dict[str, object]:
        """How the images are stored, for the manifest: the loader and its users read it to know
        whether the shards hold the training resolution (resize square, size = the model's)."""
        return {"resize": self.resize, "size": self.size, "jpeg_quality": self.quality}

    def target_size(self, width: int, height: int) -> tuple[int, int]:
        if self.resize == "square":
            return self.size, self.size
        side = min(width, height) if self.resize == "shorter" else max(width, height)
        if side <= self.size:
            return width, height
        scale = self.size / side
        return max(1, round(width * scale)), max(1, round(height * scale))

    def encode(self, path: str | Path) -> bytes:
        """JPEG bytes of the resized image; ImageProblem for a missing, unreadable or truncated file."""
        try:
            with Image.open(path) as image:
                size = self.target_size(*image.size)
                if image.format == "JPEG" and size != image.size:
                    image.draft("RGB", size)
                image.load()
                rgb = image if image.mode == "RGB" else image.convert("RGB")  # convert() copies
        except FileNotFoundError:
            raise ImageProblem("missing_image", f"image file not found: {path}", path) from None
        except UnidentifiedImageError as error:
            raise ImageProblem("unreadable_image", f"not a readable image: {path} ({error})", path) from None
        except (OSError, SyntaxError, ValueError) as error:
            reason = "truncated_image" if "truncated" in str(error).lower() else "unreadable_image"
            raise ImageProblem(reason, f"cannot decode {path}: {error}", path) from None
        if rgb.size != size:
            rgb = rgb.resize(size, Image.Resampling.BICUBIC)
        out = io.BytesIO()
        rgb.save(out, format="JPEG", quality=self.quality)
        return out.getvalue()
