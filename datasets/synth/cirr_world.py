"""CIRR-style benchmark: img_set groups of six near-duplicate scenes, modification captions.

Roles as in vqa_world: "both" families (six members along one axis), "image" families (reference
and target share a background, the four other members have another one, so the reference's nearest
image is the target), "text" families (targets with a colour/shape combination unique in the split).
"""

from __future__ import annotations

import random
from pathlib import Path

from coir.common.json_io import write_json_atomic
from coir.datasets.cirr import write_cirr_image_split, write_cirr_triplets
from coir.datasets.records import CIRRImageSet, CIRRTriplet
from coir.datasets.synth import labels as lab
from coir.datasets.synth.render import (
    BACKGROUNDS,
    COMMON_COLOURS,
    COMMON_SHAPES,
    Scene,
    encode,
    render_scene,
    write_file,
)
from coir.datasets.synth.scenes import (
    NUMBER_WORDS,
    Family,
    RareCombos,
    colour_family,
    count_family,
    pad_values,
    plural,
    rng_for,
    scene_distance,
    scene_facts,
    scene_truth,
    shape_family,
)

SPLITS = ("train", "val", "test1")
NAME_PREFIX = {"train": "train", "val": "dev", "test1": "test1"}
FIRST_PAIRID = {"train": 0, "val": 100_000, "test1": 200_000}
FIRST_SET_ID = {"train": 0, "val": 10_000, "test1": 20_000}


def image_relpath(split: str, family: int, name: str) -> str:
    if split == "train":
        return f"./train/{family % 10}/{name}.png"
    return f"./{'dev' if split == 'val' else 'test1'}/{name}.png"


def caption(rng: random.Random, fam: Family, tgt: int) -> str:
    """The modification text: what the target shows, in the statements of the LaSCo texts ("the circle
    is red", "the red object is a star", "there are two stars"), the words a LaSCo-pretrained model
    learned; imperatives ("make the circle red") would rest on words it never saw."""
    b = fam.values[tgt]
    if fam.kind == "colour":
        return f"the {fam.focus} is {b}"
    if fam.kind == "shape":
        return f"the {fam.focus} object is a {b}"
    x = fam.focus
    if b == 0:
        return rng.choice([f"there are zero {plural(x)}", f"there is no {x}"])
    return f"there is one {x}" if b == 1 else f"there are {NUMBER_WORDS[b]} {plural(x)}"


def target_fact(fam: Family, tgt: int) -> tuple:
    v = fam.values[tgt]
    if fam.kind == "colour":
        return ("obj", fam.focus, v)
    if fam.kind == "shape":
        return ("obj", v, fam.focus)
    return ("count", fam.focus, v)


def _make_family(rng: random.Random, role: str, rare: RareCombos) -> tuple[Family, list[tuple[int, int]]]:
    """A family of six and its queries (reference member, target member)."""
    if role == "image":
        # reference and target: one small change on one background; the four others: the same two
        # scenes on the two other backgrounds, so the target is the reference's nearest image
        shape, bg = rng.choice(COMMON_SHAPES), rng.choice(list(BACKGROUNDS))
        if rng.random() < 0.5:
            near = colour_family(
                rng, shape, rng.sample(list(COMMON_COLOURS), 2), background=bg, small_focus=True
            )
        else:
            a = rng.randint(0, 2)
            near = count_family(rng, shape, [a, a + 1], background=bg, small_focus=True)
        far = [Scene(b, s.objects) for b in BACKGROUNDS if b != bg for s in near.scenes]
        return Family(near.kind, shape, near.values * 3, (*near.scenes, *far)), [(0, 1), (1, 0)]
    if role == "text-colour":
        shape, rares = rare.colours_for(rng, 2)
        fam = colour_family(rng, shape, pad_values(rng, rares, list(COMMON_COLOURS), 6))
        return fam, [(0, 4), (1, 5), (2, 3), (3, 0)]
    if role == "text-shape":
        colour, rares = rare.shapes_for(rng, 2)
        fam = shape_family(rng, colour, pad_values(rng, rares, list(COMMON_SHAPES), 6))
        return fam, [(0, 4), (1, 5), (2, 3), (3, 0)]
    if role == "count":
        fam = count_family(rng, rng.choice(rare.palette_shapes), [0, 1, 2, 3, 4, 5])
        # targets of at most three (four or five of a shape would often be unique in the split)
        options = [(a, b) for a in range(6) for b in range(4) if abs(a - b) >= 2]
        return fam, rng.sample(options, 4)
    if role == "shape":
        fam = shape_family(rng, rng.choice(rare.palette_colours), rng.sample(rare.palette_shapes, 6))
    else:
        fam = colour_family(rng, rng.choice(rare.palette_shapes), rng.sample(rare.palette_colours, 6))
    order = rng.sample(range(6), 6)
    return fam, [(order[i], order[(i + 1) % 6]) for i in range(4)]


def plan(
    seed: int, split: str, n_families: int, image_share: float, text_share: float
) -> list[tuple[str, Family, list]]:
    rng = rng_for(seed, "cirr-plan", split)
    # image families have 2 queries, the others 4; text families 2 unique-target queries each
    n_image = round(image_share * 4 * n_families / (2 + 2 * image_share))
    n_text = round(text_share * (4 * n_families - 2 * n_image) / 2)
    roles = ["image"] * n_image + [("text-colour", "text-shape")[i % 2] for i in range(n_text)]
    roles += rng.choices(
        ["colour", "shape", "count"], weights=[0.4, 0.3, 0.3], k=max(0, n_families - len(roles))
    )
    rng.shuffle(roles)
    rare = RareCombos(train=split == "train")
    out = []
    for i, role in enumerate(roles):
        fam, queries = _make_family(rng_for(seed, "cirr", split, i), role, rare)
        out.append((role.split("-")[0], fam, queries))
    return out


def build_split(
    out: Path,
    split: str,
    n_families: int,
    seed: int,
    image_size: int,
    image_share: float,
    text_share: float,
    pbar=None,
) -> dict:
    planned = plan(seed, split, n_families, image_share, text_share)
    prefix = NAME_PREFIX[split]
    names: list[str] = []
    scenes: list[Scene] = []
    members: list[list[int]] = []
    image_split: dict[str, str] = {}
    truth_scenes: dict[str, dict] = {}
    for f, (role, fam, _) in enumerate(planned):
        members.append(list(range(len(scenes), len(scenes) + 6)))
        for m, scene in enumerate(fam.scenes):
            name = f"{prefix}-{f}-{m}-img{m % 2}"
            names.append(name)
            scenes.append(scene)
            image_split[name] = image_relpath(split, f, name)
            truth_scenes[name] = scene_truth(
                scene, image_size, file=image_split[name], family=f, member=m, role=role
            )
    facts = lab.FactIndex([scene_facts(s) for s in scenes])
    entries, labels_by_pair, conflicts = [], {}, 0
    pairid = FIRST_PAIRID[split]
    for f, (_role, fam, queries) in enumerate(planned):
        rng = rng_for(seed, "cirr-captions", split, f)
        order = rng.sample(range(6), 6)  # members listed in a shuffled order, as in CIRR
        member_names = [names[members[f][m]] for m in order]
        for ref, tgt in queries:
            iref, itgt = members[f][ref], members[f][tgt]
            near = lab.image_redundant(
                iref, itgt, members[f], lambda x, y: scene_distance(scenes[x], scenes[y])
            )
            label, conflict = lab.label(facts.unique_for(target_fact(fam, tgt), iref, itgt), near)
            conflicts += conflict
            entry: dict = {"pairid": pairid, "reference": names[iref]}
            if split != "test1":
                entry |= {"target_hard": names[itgt], "target_soft": {names[itgt]: 1.0}}
            entry["caption"] = caption(rng, fam, tgt)
            img_set: dict = {
                "id": FIRST_SET_ID[split] + f,
                "members": member_names,
                "reference_rank": order.index(ref),
            }
            if split != "test1":
                img_set["target_rank"] = order.index(tgt)
            entry["img_set"] = img_set
            entries.append(entry)
            labels_by_pair[str(pairid)] = label
            pairid += 1
    root = out / "cirr"
    for name, scene in zip(names, scenes, strict=True):
        write_file(root / image_split[name], encode(render_scene(scene, image_size), "png"))
        if pbar is not None:
            pbar.update(1)
    write_cirr(root, split, entries, image_split)
    write_json_atomic(out / "truth" / f"cirr_scenes_{split}.json", truth_scenes, indent=1)
    write_json_atomic(out / "truth" / f"cirr_redundancy_{split}.json", labels_by_pair, indent=1)
    return {
        "images": len(names),
        "img_sets": len(planned),
        "queries": len(entries),
        "redundancy": lab.summarize(
            list(labels_by_pair.values()), {"image": image_share, "text": text_share}, conflicts
        ),
    }


def write_cirr(root: Path, split: str, entries: list[dict], image_split: dict[str, str]) -> None:
    triplets = [
        CIRRTriplet(
            pairid=e["pairid"],
            reference=e["reference"],
            caption=e["caption"],
            img_set=CIRRImageSet(
                e["img_set"]["id"],
                tuple(e["img_set"]["members"]),
                e["img_set"]["reference_rank"],
                e["img_set"].get("target_rank"),
            ),
            target_hard=e.get("target_hard"),
            target_soft=e.get("target_soft", {}),
        )
        for e in entries
    ]
    write_cirr_triplets(root, split, triplets)
    write_cirr_image_split(root, split, image_split)


def count_images(n_families: int) -> int:
    return 6 * n_families
