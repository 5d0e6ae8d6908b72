"""Shoes-style benchmark: side-view shoes of four categories, one relative caption per triplet, written
in the published Shoes layout (coir.datasets.shoes):

    W/shoes/relative_captions_shoes.json, train_im_names.txt, eval_im_names.txt,
    W/shoes/womens_<category>/<0|1>/img_womens_<category>_<k>.jpg

A family is four near-duplicate shoes (same category, toe, sole and backdrop) that differ in one or
two attributes (colour, pattern, strap); each member is the reference of one triplet whose target is
the next member and whose caption states the target's differing attributes ("is red and has a
strap"). Families belong to one split. A few extra triplets join a reference of one split to a
target of the other (`cross_split` of them, both directions), so readers must drop them; the
captions file lists every entry in a shuffled order, as the real file mixes the splits.
"""

from __future__ import annotations

import random
from pathlib import Path

from coir.datasets.records import ShoesTriplet
from coir.datasets.shoes import shoes_image_relpath, write_shoes_captions, write_shoes_image_names
from coir.datasets.synth.render import BACKDROPS, encode, write_file
from coir.datasets.synth.scenes import rng_for
from coir.datasets.synth.shoe_render import (
    SHOE_CATEGORIES,
    SHOE_COLOURS,
    SHOE_PATTERNS,
    SOLES,
    TOES,
    Shoe,
    render_shoe,
)

SPLITS = ("train", "test")
MEMBERS = 4
MAX_FAMILIES = len(SHOE_CATEGORIES) * TOES * SOLES  # a family's identity is unique in its split
ATTRS = ("colour", "pattern", "strap")


def phrases(attr: str, value: str | bool) -> list[str]:
    if attr == "colour":
        return [f"is {value}", f"is {value} colored", f"are {value}", f"is a {value} color"]
    if attr == "pattern":
        return {
            "plain": ["is plain", "is a solid color", "has no pattern"],
            "stripes": ["has stripes", "is striped"],
            "dots": ["has polka dots", "is dotted"],
        }[str(value)]
    return ["has a strap", "has a buckle strap"] if value else ["has no strap", "is strapless"]


def caption(rng: random.Random, target: Shoe, described: list[str]) -> str:
    return " and ".join(rng.choice(phrases(a, getattr(target, a))) for a in described)


def _family(rng: random.Random, category: str, identity: tuple[int, int], backdrop: int) -> list[Shoe]:
    """Four members: one attribute with four values (colour) or two attributes with two values each."""
    base = dict(
        category=category,
        colour=rng.choice(SHOE_COLOURS),
        pattern=rng.choice(SHOE_PATTERNS),
        strap=rng.random() < 0.5,
        toe=identity[0],
        sole=identity[1],
        backdrop=backdrop,
    )
    values = {"colour": SHOE_COLOURS, "pattern": SHOE_PATTERNS, "strap": (False, True)}
    if rng.random() < 0.4:
        return [Shoe(**{**base, "colour": c}) for c in rng.sample(SHOE_COLOURS, MEMBERS)]
    a, b = rng.choice([("colour", "pattern"), ("colour", "strap"), ("pattern", "strap")])
    av, bv = rng.sample(values[a], 2), rng.sample(values[b], 2)
    return [Shoe(**{**base, a: x, b: y}) for x in av for y in bv]


def _differing(reference: Shoe, target: Shoe) -> list[str]:
    return [a for a in ATTRS if getattr(reference, a) != getattr(target, a)]


def build(
    out: Path, families: dict[str, int], cross_split: int, seed: int, image_size: int, pbar=None
) -> dict:
    """Write W/shoes; returns the counts of world.json (images and kept triplets per split, the
    cross-split entries and the captions file's length)."""
    root = out / "shoes"
    rng = rng_for(seed, "shoes-plan")
    identities = [(t, s) for t in range(TOES) for s in range(SOLES)]
    numbers = {c: rng.sample(range(1, 2000), 2000 - 1) for c in SHOE_CATEGORIES}  # image numbers per category
    names: dict[str, list[str]] = {}
    members: dict[str, list[list[tuple[str, Shoe]]]] = {}
    entries: list[tuple[str, str, str]] = []  # (reference, caption, target)
    for split in SPLITS:
        names[split], members[split] = [], []
        for f in range(families[split]):
            category = SHOE_CATEGORIES[f % len(SHOE_CATEGORIES)]
            identity = identities[(f // len(SHOE_CATEGORIES)) % len(identities)]
            frng = rng_for(seed, "shoes", split, f)
            family = []
            for shoe in _family(frng, category, identity, f % len(BACKDROPS)):
                name = f"img_womens_{category}_{numbers[category].pop()}.jpg"
                family.append((name, shoe))
                names[split].append(name)
                write_file(root / shoes_image_relpath(name), encode(render_shoe(shoe, image_size), "jpg"))
                if pbar is not None:
                    pbar.update(1)
            members[split].append(family)
            for i, (ref_name, ref) in enumerate(family):
                tgt_name, tgt = family[(i + 1) % MEMBERS]
                entries.append((ref_name, caption(frng, tgt, _differing(ref, tgt)), tgt_name))
    kept = {split: len(names[split]) for split in SPLITS}  # one triplet per member
    crng = rng_for(seed, "shoes-cross")
    for k in range(cross_split):
        ref_split, tgt_split = (SPLITS[0], SPLITS[1]) if k % 2 == 0 else (SPLITS[1], SPLITS[0])
        ref_name, ref = crng.choice(crng.choice(members[ref_split]))
        tgt_name, tgt = crng.choice(crng.choice(members[tgt_split]))
        described = _differing(ref, tgt) or ["colour"]
        entries.append((ref_name, caption(crng, tgt, described), tgt_name))
    rng.shuffle(entries)
    write_shoes_captions(root, [ShoesTriplet(i, r, c, t) for i, (r, c, t) in enumerate(entries)])
    for split in SPLITS:
        listed = list(names[split])
        rng.shuffle(listed)
        write_shoes_image_names(root, split, listed)
    return {
        **{split: {"images": len(names[split]), "triplets": kept[split]} for split in SPLITS},
        "cross_split": cross_split,
        "entries": len(entries),
    }


def count_images(families: dict[str, int]) -> int:
    return MEMBERS * sum(families.values())
