"""Scene families: a base scene and near-duplicate members that differ along one axis.

A family varies one "focus" of the scene (the colour of one object, the shape of one object, or
the number of objects of one shape) and keeps everything else, so its members are near-duplicates
of each other. Texts about the focus (a colour, a count, a shape) then need the image to pick the
right scene and the text to pick the right member.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from coir.datasets.synth.render import (
    BACKGROUNDS,
    COLOURS,
    COMMON_COLOURS,
    COMMON_SHAPES,
    GRID,
    RARE_COLOURS,
    RARE_SHAPES,
    SHAPES,
    SIZES,
    Obj,
    Scene,
)

CELLS = tuple(range(GRID * GRID))
FAR = 10**6  # scene distance between different families: unrelated scenes


def rng_for(seed: int, *parts: object) -> random.Random:
    """An RNG seeded from (seed, parts): string seeds hash with sha512, independent of PYTHONHASHSEED."""
    return random.Random(":".join(str(p) for p in (seed, *parts)))


@dataclass(frozen=True)
class Family:
    kind: str  # "colour" | "shape" | "count" | "exist"
    focus: str  # the shape (colour, count, exist families) or colour (shape families) varied
    values: tuple  # per member: colour name, shape name or count
    scenes: tuple[Scene, ...]


def _others(
    rng: random.Random, n: int, cells: list[int], shapes: Sequence[str], colours: Sequence[str]
) -> list[Obj]:
    return [Obj(rng.choice(shapes), rng.choice(colours), rng.choice(SIZES), cells.pop()) for _ in range(n)]


def _scene(background: str, objects: Iterable[Obj]) -> Scene:
    return Scene(background, tuple(sorted(objects, key=lambda o: o.cell)))


def colour_family(
    rng: random.Random,
    shape: str,
    colours: Sequence[str],
    background: str | None = None,
    small_focus: bool = False,
) -> Family:
    """Members differ in the colour of the one `shape` object of the scene.

    small_focus: the varied object is small and the scene busy (three other objects), so members
    are nearer to each other than to any other scene (image-redundant families)."""
    cells = rng.sample(CELLS, len(CELLS))
    others = _others(
        rng,
        3 if small_focus else rng.randint(1, 3),
        cells,
        [s for s in COMMON_SHAPES if s != shape],
        list(COMMON_COLOURS),
    )
    cell, size = cells.pop(), "small" if small_focus else rng.choice(SIZES)
    bg = background or rng.choice(list(BACKGROUNDS))
    scenes = tuple(_scene(bg, [*others, Obj(shape, c, size, cell)]) for c in colours)
    return Family("colour", shape, tuple(colours), scenes)


def shape_family(
    rng: random.Random,
    colour: str,
    shapes: Sequence[str],
    background: str | None = None,
    small_focus: bool = False,
) -> Family:
    """Members differ in the shape of the one `colour` object of the scene."""
    cells = rng.sample(CELLS, len(CELLS))
    others = _others(
        rng,
        3 if small_focus else rng.randint(1, 3),
        cells,
        list(COMMON_SHAPES),
        [c for c in COMMON_COLOURS if c != colour],
    )
    cell, size = cells.pop(), "small" if small_focus else rng.choice(SIZES)
    bg = background or rng.choice(list(BACKGROUNDS))
    scenes = tuple(_scene(bg, [*others, Obj(s, colour, size, cell)]) for s in shapes)
    return Family("shape", colour, tuple(shapes), scenes)


def count_family(
    rng: random.Random,
    shape: str,
    counts: Sequence[int],
    kind: str = "count",
    background: str | None = None,
    small_focus: bool = False,
) -> Family:
    """Members hold counts[i] objects of `shape` (the first n of a fixed list of slots)."""
    cells = rng.sample(CELLS, len(CELLS))
    n_others = rng.randint(0, min(2, len(CELLS) - max(counts)))
    others = _others(rng, n_others, cells, [s for s in COMMON_SHAPES if s != shape], list(COMMON_COLOURS))
    slots = _others(rng, max(counts), cells, [shape], list(COMMON_COLOURS))
    if small_focus:
        slots = [replace(o, size="small") for o in slots]
    bg = background or rng.choice(list(BACKGROUNDS))
    scenes = tuple(_scene(bg, [*others, *slots[:n]]) for n in counts)
    return Family(kind, shape, tuple(counts), scenes)


class RareCombos:
    """(shape, colour) combinations with a rare colour or shape, each to be used once per split.

    In a training split (`train=True`) rare colours and shapes are ordinary values that any family
    may use, so models learn them; only held-out splits keep each rare combination unique.
    palette_colours / palette_shapes: what the split's ordinary families draw from.
    """

    def __init__(self, train: bool = False) -> None:
        self.used: set[tuple[str, str]] = set()
        self.train = train
        self.palette_colours = list(COLOURS) if train else list(COMMON_COLOURS)
        self.palette_shapes = list(SHAPES) if train else list(COMMON_SHAPES)

    def colours_for(self, rng: random.Random, n: int) -> tuple[str, list[str]]:
        """A shape and up to n rare colours never used with it in this split (n in a training split)."""
        if self.train:
            return rng.choice(COMMON_SHAPES), rng.sample(list(RARE_COLOURS), n)
        free = {s: [c for c in RARE_COLOURS if (s, c) not in self.used] for s in COMMON_SHAPES}
        shape = max(COMMON_SHAPES, key=lambda s: (len(free[s]), rng.random()))
        picked = free[shape][:n]
        self.used.update((shape, c) for c in picked)
        return shape, picked

    def shapes_for(self, rng: random.Random, n: int) -> tuple[str, list[str]]:
        """A colour and up to n rare shapes never used with it in this split (n in a training split)."""
        if self.train:
            return rng.choice(list(COMMON_COLOURS)), rng.sample(list(RARE_SHAPES), n)
        free = {c: [s for s in RARE_SHAPES if (s, c) not in self.used] for c in COMMON_COLOURS}
        colour = max(COMMON_COLOURS, key=lambda c: (len(free[c]), rng.random()))
        picked = free[colour][:n]
        self.used.update((s, colour) for s in picked)
        return colour, picked


def pad_values(rng: random.Random, rare: list[str], pool: list[str], n: int) -> list[str]:
    """n members: the common values first, then the rare ones (the last len(rare) members)."""
    return [*rng.sample(pool, n - len(rare)), *rare]


# ---------------------------------------------------------------- questions and answers


def scene_distance(a: Scene, b: Scene) -> int:
    """Objects added, removed or changed (per grid cell), plus 2 for a different background."""
    cells_a = {o.cell: o for o in a.objects}
    cells_b = {o.cell: o for o in b.objects}
    changed = sum(cells_a.get(c) != cells_b.get(c) for c in set(cells_a) | set(cells_b))
    return changed + (2 if a.background != b.background else 0)


def scene_facts(scene: Scene) -> frozenset[tuple]:
    """What a text can say about a scene: ("obj", shape, colour), ("count", shape, n), ("exists", shape)."""
    facts: set[tuple] = {("obj", o.shape, o.colour) for o in scene.objects}
    for shape in SHAPES:
        n = sum(o.shape == shape for o in scene.objects)
        facts.add(("count", shape, n))
        if n:
            facts.add(("exists", shape))
    return frozenset(facts)


PLURALS = {"cross": "crosses"}
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def plural(shape: str) -> str:
    return PLURALS.get(shape, shape + "s")


def scene_truth(scene: Scene, image_size: int, **extra: object) -> dict:
    """JSON form of a scene with pixel centres and bounding boxes (truth/ files)."""
    from coir.datasets.synth.render import cell_centre, radius

    objects = []
    for o in scene.objects:
        cx, cy = cell_centre(o.cell, image_size)
        r = radius(o.size, image_size)
        objects.append(
            {
                "shape": o.shape,
                "colour": o.colour,
                "size": o.size,
                "cell": o.cell,
                "centre": [round(cx, 2), round(cy, 2)],
                "bbox": [round(cx - r, 2), round(cy - r, 2), round(cx + r, 2), round(cy + r, 2)],
            }
        )
    return {**extra, "background": scene.background, "objects": objects}
