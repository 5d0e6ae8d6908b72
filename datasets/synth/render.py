"""Drawing of synthetic scenes and garments with PIL: exact palette colours, no anti-aliasing.

Everything here is deterministic: the same scene gives the same pixels and the same encoded bytes
(fixed JPEG quality and 4:4:4 chroma, PNG without metadata).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from coir.common.atomic import write_bytes_atomic

# Object colours: far apart in RGB (min pairwise distance > 80) so a pixel maps back to its name.
COMMON_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 220, 40),
    "purple": (150, 60, 200),
    "orange": (245, 140, 30),
    "white": (245, 245, 245),
}
# Rare colours appear only where the world wants a text that names something unique.
RARE_COLOURS: dict[str, tuple[int, int, int]] = {
    "pink": (255, 140, 200),
    "cyan": (40, 220, 230),
    "brown": (140, 90, 40),
    "black": (20, 20, 20),
}
COLOURS = {**COMMON_COLOURS, **RARE_COLOURS}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "gray": (128, 128, 128),
    "beige": (200, 185, 150),
    "teal": (30, 80, 90),
}
COMMON_SHAPES = ("circle", "square", "triangle", "star", "hexagon", "diamond")
RARE_SHAPES = ("cross", "heart")
SHAPES = COMMON_SHAPES + RARE_SHAPES
SIZES = ("small", "large")
GRID = 3  # cells per side; cell index = row * GRID + col
JPEG_QUALITY = 95


@dataclass(frozen=True)
class Obj:
    shape: str
    colour: str
    size: str
    cell: int


@dataclass(frozen=True)
class Scene:
    background: str
    objects: tuple[Obj, ...]  # sorted by cell, at most one object per cell


def cell_centre(cell: int, image_size: int) -> tuple[float, float]:
    step = image_size / GRID
    return ((cell % GRID + 0.5) * step, (cell // GRID + 0.5) * step)


def radius(size: str, image_size: int) -> float:
    return (0.40 if size == "large" else 0.27) * image_size / GRID


def shape_points(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    """Polygon of a shape centred on (cx, cy) with outer radius r (circle: its bounding box corners)."""

    def ring(n: int, rad: float, phase: float) -> list[tuple[float, float]]:
        return [
            (
                cx + rad * math.cos(phase + 2 * math.pi * i / n),
                cy + rad * math.sin(phase + 2 * math.pi * i / n),
            )
            for i in range(n)
        ]

    if shape == "circle":
        return [(cx - r, cy - r), (cx + r, cy + r)]
    if shape == "square":
        h = r * 0.82
        return [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    if shape == "triangle":
        return [(cx, cy - r), (cx + r * 0.95, cy + r * 0.8), (cx - r * 0.95, cy + r * 0.8)]
    if shape == "diamond":
        return [(cx, cy - r), (cx + r * 0.7, cy), (cx, cy + r), (cx - r * 0.7, cy)]
    if shape == "hexagon":
        return ring(6, r, 0.0)
    if shape == "star":
        outer, inner = ring(5, r, -math.pi / 2), ring(5, r * 0.5, -math.pi / 2 + math.pi / 5)
        return [p for pair in zip(outer, inner, strict=True) for p in pair]
    if shape == "cross":
        a, w = r, r * 0.38
        return [
            (cx - w, cy - a),
            (cx + w, cy - a),
            (cx + w, cy - w),
            (cx + a, cy - w),
            (cx + a, cy + w),
            (cx + w, cy + w),
            (cx + w, cy + a),
            (cx - w, cy + a),
            (cx - w, cy + w),
            (cx - a, cy + w),
            (cx - a, cy - w),
            (cx - w, cy - w),
        ]
    if shape == "heart":
        pts = []
        for i in range(24):
            t = 2 * math.pi * i / 24
            x = 16 * math.sin(t) ** 3
            y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
            pts.append((cx + r * x / 17, cy - r * (y + 2) / 17))
        return pts
    raise ValueError(f"unknown shape {shape!r}")


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill) -> None:
    pts = shape_points(shape, cx, cy, r)
    if shape == "circle":
        draw.ellipse(pts, fill=fill)
    else:
        draw.polygon(pts, fill=fill)


def render_scene(scene: Scene, image_size: int) -> Image.Image:
    image = Image.new("RGB", (image_size, image_size), BACKGROUNDS[scene.background])
    draw = ImageDraw.Draw(image)
    for obj in scene.objects:
        cx, cy = cell_centre(obj.cell, image_size)
        draw_shape(draw, obj.shape, cx, cy, radius(obj.size, image_size), COLOURS[obj.colour])
    return image


def shape_mask(shape: str, cell: int, size: str, image_size: int) -> Image.Image:
    """A 1-bit mask of one shape where the renderer would draw it (for pixel checks in tests)."""
    mask = Image.new("1", (image_size, image_size), 0)
    cx, cy = cell_centre(cell, image_size)
    draw_shape(ImageDraw.Draw(mask), shape, cx, cy, radius(size, image_size), 1)
    return mask


# ---------------------------------------------------------------- garments (FashionIQ-style)

# Product-shot backdrops, one per family (cycled): the product's identity is visible at a glance,
# so an image-only model finds the same product, not another product of the same colour.
BACKDROPS = (
    (250, 250, 250),
    (200, 200, 200),
    (230, 210, 170),
    (170, 205, 230),
    (205, 230, 170),
    (235, 185, 205),
    (200, 180, 235),
    (160, 160, 140),
)
PATTERNS = ("plain", "stripes", "dots")
CUTS = {  # category -> the values of its length/sleeve attribute
    "dress": ("short", "long"),
    "shirt": ("short-sleeved", "long-sleeved"),
    "toptee": ("sleeveless", "short-sleeved", "long-sleeved"),
}
GARMENT_COLOURS = {k: v for k, v in COLOURS.items() if k != "white"}


@dataclass(frozen=True)
class Garment:
    category: str
    colour: str
    pattern: str
    cut: str
    width: int  # identity of the product: body width step 0..3
    neckline: int  # 0 round, 1 v, 2 square
    belt: int  # 0 none, 1 a band at the waist
    backdrop: int = 0  # index into BACKDROPS


DARK_COLOURS = ("black", "blue", "purple", "brown")  # patterns on them are drawn in white ink


def patterned_fabric(colour: str, pattern: str, image_size: int) -> Image.Image:
    """A square of `colour` with its pattern (plain, stripes or dots), ink contrasting with the colour."""
    fabric = Image.new("RGB", (image_size, image_size), GARMENT_COLOURS[colour])
    fd = ImageDraw.Draw(fabric)
    ink = (250, 250, 250) if colour in DARK_COLOURS else (20, 20, 20)
    step = max(4, image_size // 10)
    if pattern == "stripes":
        for y in range(0, image_size, step):
            fd.rectangle([0, y, image_size, y + max(1, step // 3)], fill=ink)
    elif pattern == "dots":
        r = max(1, step // 5)
        for y in range(step // 2, image_size, step):
            for x in range(step // 2, image_size, step):
                fd.ellipse([x - r, y - r, x + r, y + r], fill=ink)
    return fabric


def _garment_polygon(g: Garment, s: float) -> list[tuple[float, float]]:
    w = (0.17 + 0.04 * g.width) * s  # half body width
    top, cx = 0.18 * s, 0.5 * s
    if g.category == "dress":
        bottom = 0.74 * s if g.cut == "short" else 0.90 * s
        flare = w + 0.12 * s
        return [
            (cx - w * 0.8, top),
            (cx + w * 0.8, top),
            (cx + w, 0.45 * s),
            (cx + flare, bottom),
            (cx - flare, bottom),
            (cx - w, 0.45 * s),
        ]
    bottom = 0.80 * s if g.category == "shirt" else 0.70 * s
    return [(cx - w, top), (cx + w, top), (cx + w, bottom), (cx - w, bottom)]


def render_garment(g: Garment, image_size: int) -> Image.Image:
    s = float(image_size)
    image = Image.new("RGB", (image_size, image_size), BACKDROPS[g.backdrop])
    body = Image.new("L", (image_size, image_size), 0)
    d = ImageDraw.Draw(body)
    d.polygon(_garment_polygon(g, s), fill=255)
    w, top, cx = (0.17 + 0.04 * g.width) * s, 0.18 * s, 0.5 * s
    sleeve = {"sleeveless": 0.0, "short": 0.0, "long": 0.0, "short-sleeved": 0.14, "long-sleeved": 0.34}[
        g.cut
    ]
    if g.category == "dress":
        sleeve = 0.12
    if sleeve:
        for side in (-1, 1):
            x0 = cx + side * w
            d.polygon(
                [
                    (x0, top),
                    (x0 + side * 0.14 * s, top + 0.04 * s),
                    (x0 + side * 0.16 * s, top + sleeve * s),
                    (x0 + side * 0.06 * s, top + sleeve * s),
                    (x0, top + 0.14 * s),
                ],
                fill=255,
            )
    # neckline cut-out
    n = 0.07 * s
    if g.neckline == 0:
        d.ellipse([cx - n, top - n, cx + n, top + n], fill=0)
    elif g.neckline == 1:
        d.polygon([(cx - n, top), (cx + n, top), (cx, top + 1.6 * n)], fill=0)
    else:
        d.rectangle([cx - n, top, cx + n, top + n], fill=0)
    fabric = patterned_fabric(g.colour, g.pattern, image_size)
    fd = ImageDraw.Draw(fabric)
    if g.belt:
        fd.rectangle(
            [0, int(0.42 * s), image_size, int(0.42 * s) + max(2, image_size // 16)], fill=(90, 60, 30)
        )
    image.paste(fabric, (0, 0), body)
    return image


# ---------------------------------------------------------------- encoding and atomic writes


def encode(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "jpg":
        image.save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=False)
    else:
        image.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def write_file(path: Path, data: bytes) -> None:
    """Atomic write without fsync: images are many, small and regenerable."""
    write_bytes_atomic(path, data, fsync=False)
