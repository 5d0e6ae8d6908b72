"""The input pipeline of the word-vocabulary methods (ARTEMIS / CMAP / MANME): the reference's
evaluation image transform + word ids. Picklable, runs in DataLoader workers (the image's host part;
its float conversion and normalisation run on the device, see models/pixels.py); same protocol as
coir.pipeline.models.blip.processor.BlipProcessor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image, ImageOps

from coir.datasets.vocab import Vocabulary
from coir.pipeline.models.pixels import normalize, square_passes_through, to_uint8

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PadSquare:
    """Pad with white to a square, the padding split evenly on both sides (naver/artemis
    transforms.py): fashion photos are tall, and a centre crop would cut the garment."""

    def __call__(self, image: Image.Image) -> Image.Image:
        w, h = image.size
        if w == h:
            return image
        delta = abs(w - h)
        border = (0, delta // 2, 0, delta - delta // 2) if w > h else (delta // 2, 0, delta - delta // 2, 0)
        return ImageOps.expand(image, border, (255, 255, 255))


@dataclass
class WordProcessor:
    """image: pad to square (white), resize the shorter side to `resize` (256), centre crop
    `image_size` (224), ImageNet normalisation: the reference's eval transform (transforms.py,
    `--crop_size` 224). text: `Vocabulary.encode_query` (<start> words <end>), padded with <pad> = 0
    to `max_length` so per-sample outputs collate; longer texts keep their first max_length - 1
    tokens and end with <end> (`Vocabulary.truncate`; a TIRG vocabulary: words only, the first
    max_length kept)."""

    vocab: Vocabulary
    max_length: int = 64
    image_size: int = 224
    resize: int = 256
    pad_square: bool = True
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    _transform: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_length < 2:
            raise ValueError(f"max_length must hold <start> and <end> (>= 2), got {self.max_length}")

    def transform(self) -> Any:
        if self._transform is None:
            from torchvision import transforms as T

            steps: list[Any] = [PadSquare()] if self.pad_square else []
            steps += [
                T.Resize(self.resize),
                T.CenterCrop(self.image_size),
            ]
            self._transform = T.Compose(steps)
        return self._transform

    def image_settings(self) -> dict[str, Any]:
        """What determines `image`'s output (part of a frozen image part's identity)."""
        return {
            "pad_square": self.pad_square,
            "resize": self.resize,
            "crop": self.image_size,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    def image(self, image: Image.Image) -> torch.Tensor:
        """One PIL image -> uint8 tensor [3, image_size, image_size] (the host part)."""
        return to_uint8(self.transform()(image.convert("RGB")))

    def passes_through(self, width: int, height: int) -> bool:
        """Whether `image` leaves a decoded width x height image unchanged: a square one at image_size
        when the resize is to that size too (256 then a 224 crop changes every image)."""
        return self.resize == self.image_size and square_passes_through(self.image_size, width, height)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [B, 3, S, S] -> float32, ImageNet normalisation (the device part)."""
        return normalize(images, self.mean, self.std)

    def text(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Texts -> {"input_ids": long [B, max_length], "lengths": long [B]} and "attention_mask"
        (long [B, max_length], 1 on the first `lengths` positions) for loaders that pass a mask on."""
        input_ids = torch.zeros(len(texts), self.max_length, dtype=torch.long)
        lengths = torch.zeros(len(texts), dtype=torch.long)
        for i, text in enumerate(texts):
            ids = self.vocab.truncate(self.vocab.encode_query(text), self.max_length)
            input_ids[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            lengths[i] = len(ids)
        mask = (torch.arange(self.max_length) < lengths[:, None]).long()
        return {"input_ids": input_ids, "lengths": lengths, "attention_mask": mask}
