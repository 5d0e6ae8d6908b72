"""MIT-States-format twin: `mit_states/images/<adjective noun>/<n>.jpg`.

A noun is an object drawn as one shape, an adjective its state drawn as its colour ("red ball": a
red circle), so a tiny model can learn both from pixels. Training nouns are outside the reference's
49 test nouns, test nouns inside them (the reader splits by noun, so test objects are unseen shapes
while their states were seen in training). Each noun shows three of the colours, each label
`images_per_label` images that differ in position, size and background. Folders the reference skips
are written too, with images: `adj <noun>` (no state label) and `misc` (no space).
"""

from __future__ import annotations

from pathlib import Path

from coir.datasets.mit_states import NO_STATE
from coir.datasets.synth.render import BACKGROUNDS, Obj, Scene, encode, render_scene, write_file
from coir.datasets.synth.scenes import CELLS, rng_for

# noun -> (its shape, its adjectives): every test adjective is a training adjective too
TRAIN_OBJECTS = {
    "ball": ("circle", ("red", "green", "blue")),
    "box": ("square", ("yellow", "purple", "orange")),
    "pyramid": ("triangle", ("green", "blue", "yellow")),
    "kite": ("diamond", ("purple", "orange", "red")),
}
TEST_OBJECTS = {
    "clock": ("hexagon", ("red", "yellow", "purple")),
    "fan": ("star", ("green", "orange", "blue")),
}
ADJECTIVES_PER_NOUN = 3
SKIPPED_FOLDERS = (f"{NO_STATE} ball", f"{NO_STATE} clock", "misc")


def _image(rng, shape: str, colour: str, image_size: int) -> bytes:
    obj = Obj(shape, colour, rng.choice(("small", "large")), rng.choice(CELLS))
    return encode(render_scene(Scene(rng.choice(sorted(BACKGROUNDS)), (obj,)), image_size), "jpg")


def build(out: Path, images_per_label: int, seed: int, image_size: int, pbar=None) -> dict:
    """Write the world's MIT-States folders; return the counts per split."""
    root = out / "mit_states" / "images"
    counts = {}
    for split, nouns in (("train", TRAIN_OBJECTS), ("test", TEST_OBJECTS)):
        images = queries = 0
        for noun, (shape, adjectives) in nouns.items():
            rng = rng_for(seed, "mit-states", noun)
            for adjective in adjectives:
                for n in range(images_per_label):
                    path = root / f"{adjective} {noun}" / f"{n:03d}.jpg"
                    write_file(path, _image(rng, shape, adjective, image_size))
                    if pbar is not None:
                        pbar.update(1)
            images += ADJECTIVES_PER_NOUN * images_per_label
            queries += ADJECTIVES_PER_NOUN * images_per_label * (ADJECTIVES_PER_NOUN - 1)
        counts[split] = {"images": images, "nouns": len(nouns), "queries": queries if split == "test" else 0}
    rng = rng_for(seed, "mit-states", "skipped")
    for folder in SKIPPED_FOLDERS:
        write_file(root / folder / "000.jpg", _image(rng, "heart", "white", image_size))
        if pbar is not None:
            pbar.update(1)
    return counts


def count_images(images_per_label: int) -> int:
    labels = (len(TRAIN_OBJECTS) + len(TEST_OBJECTS)) * ADJECTIVES_PER_NOUN
    return labels * images_per_label + len(SKIPPED_FOLDERS)
