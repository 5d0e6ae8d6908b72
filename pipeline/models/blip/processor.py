"""The BLIP input pipeline: image transform + tokenizer. Picklable, runs in DataLoader workers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

# BLIP's normalisation (the CLIP statistics)
BLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
BLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class BlipProcessor:
    image_size: int
    tokenizer: Any  # a transformers fast tokenizer (picklable)
    max_length: int = 40
    mean: tuple[float, ...] = BLIP_MEAN
    std: tuple[float, ...] = BLIP_STD
    _transform: Any = field(default=None, init=False, repr=False, compare=False)

    def transform(self) -> Any:
        if self._transform is None:
            from torchvision import transforms as T

            self._transform = T.Compose(
                [
                    T.Resize((self.image_size, self.image_size), interpolation=T.InterpolationMode.BICUBIC),
                    T.ToTensor(),
                    T.Normalize(self.mean, self.std),
                ]
            )
        return self._transform

    def image(self, image: Image.Image) -> torch.Tensor:
        """One PIL image -> float tensor [3, image_size, image_size]."""
        return self.transform()(image.convert("RGB"))

    def text(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Texts -> {"input_ids", "attention_mask"} long [B, max_length] (fixed length, so per-sample
        outputs collate)."""
        enc = self.tokenizer(
            list(texts),
            padding="max_length",
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return {"input_ids": enc["input_ids"].long(), "attention_mask": enc["attention_mask"].long()}
