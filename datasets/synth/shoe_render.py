"""Drawing of synthetic shoes (side view) with PIL, deterministic like render.py's scenes and garments.

A shoe's identity (category silhouette, toe length, sole thickness, backdrop) is what an image-only
model matches; its attributes (colour, pattern, strap) are what the relative captions change.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageDraw

from coir.datasets.synth.render import BACKDROPS, patterned_fabric

SHOE_CATEGORIES = ("boots", "sneakers", "high_heels", "flats")
SHOE_PATTERNS = ("plain", "stripes", "dots")
SHOE_COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "pink", "brown", "black")
TOES = 3  # toe lengths
SOLES = 3  # sole thicknesses


@dataclass(frozen=True)
class Shoe:
    category: str  # one of SHOE_CATEGORIES: the silhouette
    colour: str
    pattern: str  # one of SHOE_PATTERNS
    strap: bool  # a band across the upper
    toe: int  # identity: 0..TOES-1, how far the toe reaches
    sole: int  # identity: 0..SOLES-1, sole thickness
    backdrop: int = 0  # index into render.BACKDROPS


def _upper(shoe: Shoe, s: float) -> list[tuple[float, float]]:
    """Upper polygon, heel on the left, toe on the right; its bottom edge is the sole's top (0.78 s)."""
    toe = (0.80 + 0.05 * shoe.toe) * s
    base = 0.78 * s
    if shoe.category == "boots":
        top = [(0.16 * s, 0.18 * s), (0.40 * s, 0.18 * s), (0.44 * s, 0.56 * s), (toe - 0.08 * s, 0.64 * s)]
    elif shoe.category == "sneakers":
        top = [(0.14 * s, 0.50 * s), (0.36 * s, 0.46 * s), (0.56 * s, 0.56 * s), (toe - 0.06 * s, 0.64 * s)]
    elif shoe.category == "high_heels":
        top = [(0.18 * s, 0.42 * s), (0.30 * s, 0.44 * s), (0.50 * s, 0.62 * s), (toe - 0.06 * s, 0.68 * s)]
    else:  # flats
        top = [(0.15 * s, 0.62 * s), (0.36 * s, 0.62 * s), (0.52 * s, 0.66 * s), (toe - 0.06 * s, 0.70 * s)]
    heel_x = top[0][0]
    return [(heel_x, base), *top, (toe, 0.74 * s), (toe, base)]


def render_shoe(shoe: Shoe, image_size: int) -> Image.Image:
    s = float(image_size)
    image = Image.new("RGB", (image_size, image_size), BACKDROPS[shoe.backdrop])
    draw = ImageDraw.Draw(image)
    upper = _upper(shoe, s)
    toe = upper[-1][0]
    sole_bottom = (0.81 + 0.04 * shoe.sole) * s
    if shoe.category == "high_heels":  # the heel lifts the back of the shoe
        draw.rectangle([0.17 * s, 0.60 * s, 0.25 * s, sole_bottom], fill=(40, 40, 40))
        draw.rectangle([0.40 * s, 0.78 * s, toe, sole_bottom], fill=(40, 40, 40))
    else:
        draw.rectangle([upper[0][0], 0.78 * s, toe, sole_bottom], fill=(40, 40, 40))
    mask = Image.new("L", (image_size, image_size), 0)
    ImageDraw.Draw(mask).polygon(upper, fill=255)
    fabric = patterned_fabric(shoe.colour, shoe.pattern, image_size)
    fd = ImageDraw.Draw(fabric)
    if shoe.strap:
        band = (200, 170, 40) if shoe.colour != "yellow" else (90, 60, 30)
        fd.rectangle([0.44 * s, 0, 0.44 * s + max(3, image_size // 10), image_size], fill=band)
    if shoe.category == "sneakers":  # laces across the instep
        for i in range(3):
            x = (0.42 + 0.06 * i) * s
            fd.line(
                [x, 0.50 * s, x + 0.05 * s, 0.58 * s], fill=(245, 245, 245), width=max(1, image_size // 32)
            )
    image.paste(fabric, (0, 0), mask)
    return image
