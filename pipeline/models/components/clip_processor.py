"""The input pipeline of the open_clip families (CLIP4Cir, Pic2Word): CLIP's image transform, after
CLIP4Cir's TargetPad / SquarePad when asked (black padding, bicubic resize, centre crop, CLIP's
normalisation), and open_clip's BPE tokenizer (its vocabulary ships inside the open_clip package).
Picklable, runs in DataLoader workers (the image's host part; its float conversion and normalisation
run on the device, see models/pixels.py)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image, ImageOps

from coir.pipeline.models.pixels import normalize, square_passes_through, to_uint8

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def pad_to_ratio(image: Image.Image, target_ratio: float) -> Image.Image:
    """TargetPad (data_utils.py): an image whose long / short side ratio reaches target_ratio is padded
    with black, evenly on both sides of its short side, to a ratio of target_ratio (1.0 = SquarePad)."""
    w, h = image.size
    if max(w, h) / min(w, h) < target_ratio:
        return image
    padded = max(w, h) / target_ratio
    horizontal, vertical = max(int((padded - w) / 2), 0), max(int((padded - h) / 2), 0)
    return ImageOps.expand(image, (horizontal, vertical, horizontal, vertical), (0, 0, 0))


@functools.cache
def simple_tokenizer(context_length: int) -> Any:
    """One tokenizer per process and context length (reading the BPE vocabulary takes a second)."""
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer(context_length=context_length)


@dataclass
class ClipProcessor:
    """image: pad (targetpad: to target_ratio, squarepad: to a square, clip: none), resize the shorter
    side to image_size (bicubic), centre crop, CLIP normalisation. text: open_clip token ids
    [B, context_length], truncated as the reference's clip.tokenize(truncate=True)."""

    image_size: int
    context_length: int
    image_transform: str = "targetpad"
    target_ratio: float = 1.25
    _transform: Any = field(default=None, init=False, repr=False, compare=False)
    _tokenizer: Any = field(default=None, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:  # built lazily in each worker
        return {**self.__dict__, "_transform": None, "_tokenizer": None}

    def transform(self) -> Any:
        if self._transform is None:
            from torchvision import transforms as T

            self._transform = T.Compose(
                [
                    T.Resize(self.image_size, interpolation=T.InterpolationMode.BICUBIC),
                    T.CenterCrop(self.image_size),
                ]
            )
        return self._transform

    def image_settings(self) -> dict[str, Any]:
        """What determines `image`'s output (part of a frozen image part's identity)."""
        return {
            "pad": self.image_transform,
            "target_ratio": self.target_ratio if self.image_transform == "targetpad" else None,
            "size": self.image_size,
            "mean": list(CLIP_MEAN),
            "std": list(CLIP_STD),
        }

    def image(self, image: Image.Image) -> torch.Tensor:
        """One PIL image -> uint8 tensor [3, image_size, image_size] (the host part)."""
        image = image.convert("RGB")
        if self.image_transform == "targetpad":
            image = pad_to_ratio(image, self.target_ratio)
        elif self.image_transform == "squarepad":
            image = pad_to_ratio(image, 1.0)
        return to_uint8(self.transform()(image))

    def passes_through(self, width: int, height: int) -> bool:
        """Whether `image` leaves a decoded width x height image unchanged (a square one needs no
        padding, and neither resize nor crop changes it at image_size)."""
        return square_passes_through(self.image_size, width, height)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [B, 3, S, S] -> float32, CLIP's normalisation (the device part)."""
        return normalize(images, CLIP_MEAN, CLIP_STD)

    def tokenizer(self) -> Any:
        """open_clip's SimpleTokenizer (texts -> ids [B, context_length], truncated, ended by <end>)."""
        if self._tokenizer is None:
            self._tokenizer = simple_tokenizer(self.context_length)
        return self._tokenizer

    def text(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return {"input_ids": self.tokenizer()(texts).long()}
