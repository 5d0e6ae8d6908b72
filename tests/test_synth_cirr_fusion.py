"""The synthetic CIRR needs the text and the image together, as the real one does: within each img_set
of six near-duplicates the reference's nearest image is mostly not the target, so an image-only
retriever falls far below one that also reads the caption.

Both retrievers here are exact (pixel distance; the caption read against the scene truth), so the
comparison measures the world's design, not a model's training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from coir.datasets.cirr import read_cirr_image_split, read_cirr_triplets
from coir.datasets.synth import cirr_world
from coir.datasets.synth.render import COLOURS, SHAPES
from coir.datasets.synth.scenes import NUMBER_WORDS

NUMBERS = {w: i for i, w in enumerate(NUMBER_WORDS)}
PLURALS = {("crosses" if s == "cross" else s + "s"): s for s in SHAPES}


@pytest.fixture(scope="module")
def cirr_val(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CIRR val split of the demo's world (small scale, seed 0), built alone."""
    out = tmp_path_factory.mktemp("synth-cirr")
    cirr_world.build_split(out, "val", 30, 0, 64, image_share=0.15, text_share=0.15)
    return out


def wanted(caption: str, ref: list[dict]) -> tuple[str, str, object] | None:
    """What the caption says the target holds, given the reference's objects: ("obj", shape, colour)
    or ("count", shape, n); relative counts ("make the red object a star") are read against the reference."""
    words = [PLURALS.get(w, w) for w in caption.lower().split()]
    shape = [w for w in words if w in SHAPES][-1]
    colours = [w for w in words if w in COLOURS]
    has = sum(o["shape"] == shape for o in ref)
    numbers = [NUMBERS[w] for w in words if w in NUMBERS]
    if words[0] == "show":
        return ("count", shape, numbers[0])
    if words[:2] == ["remove", "all"]:
        return ("count", shape, 0)
    if words[0] == "add":
        return ("count", shape, has + (numbers[0] if numbers else 1))
    if words[0] == "remove":
        return ("count", shape, has - (numbers[0] if numbers else 1))
    # "make the circle red", "make the red object a star", "replace the red circle with a red star"
    return ("obj", shape, colours[-1]) if colours else None


def holds(fact: tuple, objects: list[dict]) -> bool:
    if fact[0] == "count":
        return sum(o["shape"] == fact[1] for o in objects) == fact[2]
    return any((o["shape"], o["colour"]) == fact[1:] for o in objects)


def recall_at_1(world: Path) -> dict[str, float]:
    """R@1 over the split's gallery (reference removed) of pixel image-only and of pixel + caption
    (the pixel-nearest image among those holding what the caption asks for)."""
    root = world / "cirr"
    paths = read_cirr_image_split(root, "val")
    names = list(paths)
    pixels = np.stack([np.asarray(Image.open(root / paths[n]), dtype=np.float32).ravel() for n in names])
    scenes = json.loads((world / "truth" / "cirr_scenes_val.json").read_text())
    hits: dict[str, list[bool]] = {"image-only": [], "fusion": []}
    for t in read_cirr_triplets(root, "val"):
        ref = names.index(t.reference)
        distance = ((pixels - pixels[ref]) ** 2).sum(axis=1)
        distance[ref] = np.inf
        hits["image-only"].append(names[int(distance.argmin())] == t.target_hard)
        fact = wanted(t.caption, scenes[t.reference]["objects"])
        assert fact is not None, t.caption
        allowed = np.array([holds(fact, scenes[n]["objects"]) for n in names])
        assert allowed[names.index(t.target_hard)], (t.caption, fact)  # the reading is right
        hits["fusion"].append(names[int(np.where(allowed, distance, np.inf).argmin())] == t.target_hard)
    return {k: 100 * sum(v) / len(v) for k, v in hits.items()}


def test_fusion_beats_image_only_on_the_synthetic_cirr(cirr_val: Path) -> None:
    r1 = recall_at_1(cirr_val)
    assert r1["fusion"] >= 75, r1
    assert r1["fusion"] >= r1["image-only"] + 40, r1
