"""The BLIP input pipeline: image transform + tokenizer. Picklable, runs in DataLoader workers (the
image's host part; its float conversion and normalisation run on the device, see models/pixels.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from coir.pipeline.models.pixels import normalize, square_passes_through, to_uint8

# BLIP's normalisation (the CLIP statistics)
BLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
BLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_PUNCTUATION = re.compile(r"""([.!"()*#:;~])""")


def pre_caption(text: str, max_words: int) -> str:
    """BLIP's caption cleaning (salesforce/BLIP data/utils.py pre_caption): lower case, these
    punctuation marks . ! " ( ) * # : ; ~ become spaces, runs of spaces collapse, first max_words words."""
    text = re.sub(r"\s{2,}", " ", _PUNCTUATION.sub(" ", text.lower())).strip()
    return " ".join(text.split(" ")[:max_words])


@dataclass
class BlipProcessor:
    image_size: int
    tokenizer: Any  # a transformers fast tokenizer (picklable)
    max_length: int = 40
    max_words: int | None = None  # BLIP's pre_caption before tokenising; None leaves texts as they are
    mean: tuple[float, ...] = BLIP_MEAN
    std: tuple[float, ...] = BLIP_STD
    _transform: Any = field(default=None, init=False, repr=False, compare=False)

    def transform(self) -> Any:
        """The geometry: the whole image to image_size x image_size, bicubic (PIL's, as BLIP's)."""
        if self._transform is None:
            from torchvision import transforms as T

            size = (self.image_size, self.image_size)
            self._transform = T.Resize(size, interpolation=T.InterpolationMode.BICUBIC)
        return self._transform

    def image(self, image: Image.Image) -> torch.Tensor:
        """One PIL image -> uint8 tensor [3, image_size, image_size] (the host part)."""
        return to_uint8(self.transform()(image.convert("RGB")))

    def passes_through(self, width: int, height: int) -> bool:
        """Whether `image` leaves a decoded width x height image unchanged (no resize needed)."""
        return square_passes_through(self.image_size, width, height)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [B, 3, S, S] -> float32, BLIP's normalisation (the device part)."""
        return normalize(images, self.mean, self.std)

    def text(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Texts -> {"input_ids", "attention_mask"} long [B, max_length] (fixed length, so per-sample
        outputs collate)."""
        if self.max_words is not None:
            texts = [pre_caption(t, self.max_words) for t in texts]
        enc = self.tokenizer(
            list(texts),
            padding="max_length",
            truncation=True,
            max_length=self.max_length,
            return_tensors="np",  # then torch: transformers' "pt" builds the tensor from lists (slower)
        )
        return {key: torch.from_numpy(enc[key]).long() for key in ("input_ids", "attention_mask")}
