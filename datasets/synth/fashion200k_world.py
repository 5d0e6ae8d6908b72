"""Fashion200k-format twin: products of the five categories described by attribute words
("<colour> <pattern> <noun>"), written as labels/<category>_<split>_detect_all.txt, test_queries.txt
and the images at the label paths (women/<category folder>/<id>/<id>_0.jpeg).

A family is one product identity (body width, neckline, belt, backdrop) in four colour / pattern
variants: the base (c0, p0), two other colours (c1, p0), (c2, p0) and another pattern (c0, p1).
Variants one word apart share a parent (the description with that word deleted), so the reference's
training pairs exist, and the test queries are each test family's four sibling pairs (base with
each variant, the two colour variants), each in a random direction. The image shows the identity,
the category's look, the colour and the pattern; the words name colour, pattern and category, so a
model learns from both.
"""

from __future__ import annotations

import random
from pathlib import Path

from coir.common.atomic import write_bytes_atomic
from coir.datasets.fashion200k import FASHION200K_CATEGORIES, label_path, queries_file
from coir.datasets.synth.fashion_world import COMMON, IDENTITIES
from coir.datasets.synth.render import BACKDROPS, PATTERNS, Garment, encode, render_garment, write_file
from coir.datasets.synth.scenes import rng_for

SPLITS = ("train", "test")
MEMBERS = 4  # per family
# category -> (rendered garment category, cut): five distinct looks
LOOK = {
    "dress": ("dress", "long"),
    "jacket": ("shirt", "long-sleeved"),
    "pants": ("shirt", "short-sleeved"),
    "skirt": ("dress", "short"),
    "top": ("toptee", "sleeveless"),
}
FOLDER = {
    "dress": "dresses/casual_and_day_dresses",
    "jacket": "jackets/coats_and_jackets",
    "pants": "pants/wide_leg_pants",
    "skirt": "skirts/mini_skirts",
    "top": "tops/blouses",
}
PATTERN_WORD = {"plain": "plain", "stripes": "striped", "dots": "dotted"}
SIBLINGS = ((0, 1), (0, 2), (1, 2), (0, 3))  # member pairs one word apart
FIRST_ID = {"train": 10_000_000, "test": 20_000_000}


def description(category: str, colour: str, pattern: str) -> str:
    return f"{colour} {PATTERN_WORD[pattern]} {category}"


def _members(rng: random.Random) -> list[tuple[str, str]]:
    c0, c1, c2 = rng.sample(COMMON, 3)
    p0, p1 = rng.sample(PATTERNS, 2)
    return [(c0, p0), (c1, p0), (c2, p0), (c0, p1)]


def build_split(out: Path, split: str, n_families: int, seed: int, image_size: int, pbar=None) -> dict:
    """Write the split's five label files (and, for test, test_queries.txt); return its counts."""
    root = out / "fashion200k"
    product = FIRST_ID[split]
    queries: list[str] = []
    descriptions: set[str] = set()
    images = 0
    for category in FASHION200K_CATEGORIES:
        rng = rng_for(seed, "f200k-plan", split, category)
        identities = rng.sample(IDENTITIES, n_families)
        look, cut = LOOK[category]
        lines = []
        for f, (width, neckline, belt) in enumerate(identities):
            frng = rng_for(seed, "f200k", split, category, f)
            paths = []
            for colour, pattern in _members(frng):
                garment = Garment(look, colour, pattern, cut, width, neckline, belt, f % len(BACKDROPS))
                path = f"women/{FOLDER[category]}/{product}/{product}_0.jpeg"
                product += 1
                write_file(root / path, encode(render_garment(garment, image_size), "jpg"))
                text = description(category, colour, pattern)
                lines.append(f"{path}\t{frng.uniform(0.5, 1.0):.6f}\t{text}\n")
                descriptions.add(text)
                paths.append(path)
                if pbar is not None:
                    pbar.update(1)
            for a, b in SIBLINGS:
                ref, tgt = (paths[a], paths[b]) if frng.random() < 0.5 else (paths[b], paths[a])
                queries.append(f"{ref} {tgt}\n")
        write_bytes_atomic(label_path(root, category, split), "".join(lines).encode(), fsync=False)
        images += len(lines)
    if split == "test":
        write_bytes_atomic(queries_file(root), "".join(queries).encode(), fsync=False)
    return {
        "images": images,
        "descriptions": len(descriptions),
        "queries": len(queries) if split == "test" else 0,
    }


def count_images(n_families: int) -> int:
    return len(FASHION200K_CATEGORIES) * n_families * MEMBERS
