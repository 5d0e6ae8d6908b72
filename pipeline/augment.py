"""Training-time augmentation of a triplet: BLIP's retrieval-finetuning image transform, made safe for
composed retrieval.

BLIP (salesforce/BLIP data/__init__.py, `create_dataset`, transform_train) trains retrieval with
RandomResizedCrop(image_size, scale=(0.5, 1.0), bicubic) -> RandomHorizontalFlip() ->
RandomAugment(2, 5, isPIL=True, augs=[Identity, AutoContrast, Brightness, Sharpness, Equalize, ShearX,
ShearY, TranslateX, TranslateY, Rotate]) -> ToTensor -> Normalize. Here:

- the crop is drawn as torchvision's RandomResizedCrop draws it (area fraction in `crop_scale`,
  log-uniform aspect ratio in `crop_ratio`, 10 tries, then a centre crop) and resized with bicubic;
- a horizontal flip changes the meaning of "the dog on the left": with flip=swap the flip is drawn once
  per triplet, applied to the reference *and* the target, and "left"/"right" are swapped in the
  modification text; flip=none never flips;
- RandAugment follows BLIP's transform/randaugment.py: N ops drawn with replacement, each applied with
  probability 0.5 at level M of 10 (enhance factor M/10*1.8+0.1, shear M/10*0.3, translate M px,
  rotate M/10*30 degrees, signs random, fill grey 128), with PIL's equivalents of its cv2 ops.

Everything runs on the decoded PIL image in the DataLoader worker, before the model's Processor, and
every random choice comes from the `random.Random` the caller passes: the stream seeds one per raw
sample from (seed, epoch, rank, worker, sample index), so a resumed run augments exactly as the
interrupted one would have.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image, ImageEnhance, ImageOps

FLIPS = ("swap", "none")
RAND_AUGMENT_OPS = (
    "Identity",
    "AutoContrast",
    "Brightness",
    "Sharpness",
    "Equalize",
    "ShearX",
    "ShearY",
    "TranslateX",
    "TranslateY",
    "Rotate",
)
MAX_LEVEL = 10
FILL = (128, 128, 128)  # BLIP's replace_value for the geometric ops


@dataclass
class AugmentConfig:
    enabled: bool = False
    crop_scale: list[float] = field(default_factory=lambda: [0.5, 1.0])  # BLIP's min_scale 0.5
    crop_ratio: list[float] = field(default_factory=lambda: [3 / 4, 4 / 3])  # torchvision's default
    flip: str = "swap"  # swap: flip both images and swap left/right in the text | none
    flip_prob: float = 0.5  # RandomHorizontalFlip's default
    randaugment_ops: int = 2  # N of RandomAugment(2, 5); 0 switches RandAugment off
    randaugment_level: int = 5  # M (of 10)

    def problems(self) -> list[tuple[str, str]]:
        """(key under data.augment, message) for each value out of range."""
        out = []
        lo, hi = (self.crop_scale + [0.0, 0.0])[:2]
        if len(self.crop_scale) != 2 or not 0 < lo <= hi <= 1:
            out.append(("crop_scale", f"must be [min, max] with 0 < min <= max <= 1, got {self.crop_scale}"))
        r_lo, r_hi = (self.crop_ratio + [0.0, 0.0])[:2]
        if len(self.crop_ratio) != 2 or not 0 < r_lo <= r_hi:
            out.append(("crop_ratio", f"must be [min, max] with 0 < min <= max, got {self.crop_ratio}"))
        if self.flip not in FLIPS:
            out.append(("flip", f"must be {' or '.join(FLIPS)}, got {self.flip!r}"))
        if not 0 <= self.flip_prob <= 1:
            out.append(("flip_prob", f"must be in [0, 1], got {self.flip_prob}"))
        if self.randaugment_ops < 0:
            out.append(("randaugment_ops", f"must be >= 0, got {self.randaugment_ops}"))
        if not 0 <= self.randaugment_level <= MAX_LEVEL:
            out.append(("randaugment_level", f"must be in [0, {MAX_LEVEL}], got {self.randaugment_level}"))
        return out


def crop_box(
    width: int, height: int, scale: tuple[float, float], ratio: tuple[float, float], rng: random.Random
) -> tuple[int, int, int, int]:
    """(left, top, crop width, crop height): torchvision RandomResizedCrop.get_params on `rng`."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, width - w), rng.randint(0, height - h), w, h
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


# the side words and their compounds (leftmost, right-hand, leftwards), not "leftover" or "rightly"
_SIDE = re.compile(r"\b(left|right)(?=(?:most|hand|handed|ward|wards)?\b)", re.IGNORECASE)


def swap_left_right(text: str) -> str:
    """The text of the mirrored scene: left <-> right, keeping each word's capitalisation."""

    def other(match: re.Match[str]) -> str:
        word = match.group(1)
        new = "right" if word.lower() == "left" else "left"
        if word.isupper():
            return new.upper()
        return new.capitalize() if word[0].isupper() else new

    return _SIDE.sub(other, text)


def _signed(value: float, rng: random.Random) -> float:
    return -value if rng.random() > 0.5 else value


def _affine(img: Image.Image, data: tuple[float, ...]) -> Image.Image:
    return img.transform(img.size, Image.Transform.AFFINE, data, Image.Resampling.BILINEAR, fillcolor=FILL)


def rand_augment_op(name: str, level: int, rng: random.Random) -> Callable[[Image.Image], Image.Image]:
    """One op of BLIP's RandomAugment at `level`, its random sign drawn from rng."""
    frac = level / MAX_LEVEL
    if name == "Identity":
        return lambda img: img
    if name == "AutoContrast":
        return ImageOps.autocontrast
    if name == "Equalize":
        return ImageOps.equalize
    if name in ("Brightness", "Sharpness"):
        factor = frac * 1.8 + 0.1
        enhancer = ImageEnhance.Brightness if name == "Brightness" else ImageEnhance.Sharpness
        return lambda img: enhancer(img).enhance(factor)
    if name == "Rotate":
        angle = _signed(frac * 30, rng)
        return lambda img: img.rotate(angle, Image.Resampling.BILINEAR, fillcolor=FILL)
    if name in ("ShearX", "ShearY"):
        s = _signed(frac * 0.3, rng)
        data = (1, s, 0, 0, 1, 0) if name == "ShearX" else (1, 0, 0, s, 1, 0)
        return lambda img: _affine(img, data)
    if name in ("TranslateX", "TranslateY"):
        shift = _signed(frac * 10, rng)  # BLIP's translate_const 10: pixels, whatever the image size
        data = (1, 0, shift, 0, 1, 0) if name == "TranslateX" else (1, 0, 0, 0, 1, shift)
        return lambda img: _affine(img, data)
    raise ValueError(f"unknown RandAugment op {name!r}")


class TripletAugment:
    """(reference, target, text) -> augmented (reference, target, text). Picklable (worker side)."""

    def __init__(self, config: AugmentConfig, image_size: int | None) -> None:
        self.config = config
        self.image_size = image_size  # crops are resized to this (bicubic); None keeps the crop's size

    def image(self, img: Image.Image, flip: bool, rng: random.Random) -> Image.Image:
        cfg = self.config
        left, top, w, h = crop_box(img.width, img.height, tuple(cfg.crop_scale), tuple(cfg.crop_ratio), rng)
        img = img.crop((left, top, left + w, top + h))
        if self.image_size is not None:
            img = img.resize((self.image_size, self.image_size), Image.Resampling.BICUBIC)
        if flip:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        for _ in range(cfg.randaugment_ops):
            name = rng.choice(RAND_AUGMENT_OPS)
            if rng.random() > 0.5:  # each drawn op applies with probability 0.5
                continue
            img = rand_augment_op(name, cfg.randaugment_level, rng)(img)
        return img

    def __call__(
        self, reference: Image.Image, target: Image.Image, text: str, rng: random.Random
    ) -> tuple[Image.Image, Image.Image, str]:
        flip = self.config.flip == "swap" and rng.random() < self.config.flip_prob
        reference = self.image(reference, flip, rng)
        target = self.image(target, flip, rng)
        return reference, target, swap_left_right(text) if flip else text
