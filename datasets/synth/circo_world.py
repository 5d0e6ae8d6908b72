"""CIRCO-format twin: `circo/annotations/{val,test}.json` over a COCO-2017-unlabeled-style gallery
(`circo/COCO2017_unlabeled/annotations/image_info_unlabeled2017.json`, `unlabeled2017/<id:012d>.jpg`).

Each query has a family of four near-duplicate scenes on one background, differing in one focus (a
colour, a shape or a count): the reference, the target and two distractors. The target's scene is
drawn again on one or two other backgrounds (more true targets), the reference's on another one (an
image-similar wrong answer). The caption states the target's fact in the LaSCo texts' words ("the
circle is red", as the CIRR twin), the shared concept names the focus ("a circle"). The ground
truths are every gallery image that shows the target's fact (the target first, as in CIRCO), so an
image of another query that happens to show it counts too; filler images of rare shapes show none.
Both splits share the gallery; query ids start at 0 in each, as in the real files. Every image's
scene is in truth/circo_scenes.json (by image id).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from coir.common.json_io import write_json_atomic
from coir.datasets.circo import circo_image_dir, write_circo_queries, write_coco_image_info
from coir.datasets.records import CIRCOQuery, COCOImage
from coir.datasets.synth.cirr_world import caption, target_fact
from coir.datasets.synth.render import (
    BACKGROUNDS,
    COMMON_COLOURS,
    COMMON_SHAPES,
    RARE_SHAPES,
    Obj,
    Scene,
    encode,
    render_scene,
    write_file,
)
from coir.datasets.synth.scenes import (
    CELLS,
    Family,
    colour_family,
    count_family,
    plural,
    rng_for,
    scene_facts,
    scene_truth,
    shape_family,
)

SPLITS = ("val", "test")
ASPECTS = {"colour": ("compare_change",), "shape": ("compare_change",), "count": ("cardinality",)}
MAX_IMAGES_PER_QUERY = 7  # four family members, two more targets, the reference elsewhere


@dataclass(frozen=True)
class _Planned:
    fam: Family
    caption: str
    shared_concept: str
    aspects: tuple[str, ...]
    scenes: tuple[Scene, ...]  # reference, target, the rest
    fact: tuple


def _family(rng: random.Random) -> tuple[Family, str]:
    kind = rng.choice(("colour", "shape", "count"))
    if kind == "colour":
        shape = rng.choice(COMMON_SHAPES)
        return colour_family(rng, shape, rng.sample(list(COMMON_COLOURS), 4)), f"a {shape}"
    if kind == "shape":
        colour = rng.choice(list(COMMON_COLOURS))
        return shape_family(rng, colour, rng.sample(COMMON_SHAPES, 4)), f"a {colour} object"
    shape = rng.choice(COMMON_SHAPES)
    target = rng.choice((2, 3))
    others = rng.sample([n for n in range(5) if n != target], 3)
    return count_family(rng, shape, [others[0], target, *others[1:]]), f"some {plural(shape)}"


def _plan_query(seed: int, split: str, index: int) -> _Planned:
    rng = rng_for(seed, "circo", split, index)
    fam, concept = _family(rng)
    reference, target, *distractors = fam.scenes
    elsewhere = [b for b in BACKGROUNDS if b != target.background]
    more_targets = [Scene(b, target.objects) for b in rng.sample(elsewhere, rng.randint(1, 2))]
    reference_elsewhere = Scene(rng.choice(elsewhere), reference.objects)
    return _Planned(
        fam,
        caption(rng, fam, 1),
        concept,
        ASPECTS[fam.kind],
        (reference, target, *distractors, *more_targets, reference_elsewhere),
        target_fact(fam, 1),
    )


def _filler(rng: random.Random) -> Scene:
    """A scene of rare shapes only: it shows no fact a caption states."""
    cells = rng.sample(CELLS, 2)
    objects = [Obj(rng.choice(RARE_SHAPES), rng.choice(list(COMMON_COLOURS)), "large", c) for c in cells]
    return Scene(rng.choice(list(BACKGROUNDS)), tuple(sorted(objects, key=lambda o: o.cell)))


def build(
    out: Path, queries: dict[str, int], fillers: int, seed: int, image_size: int, pbar=None
) -> dict[str, dict[str, int]]:
    """Write both splits and the shared gallery under out/circo; return the counts per split."""
    planned = {split: [_plan_query(seed, split, i) for i in range(queries.get(split, 0))] for split in SPLITS}
    scenes = [s for split in SPLITS for p in planned[split] for s in p.scenes]
    rng = rng_for(seed, "circo-gallery")
    scenes += [_filler(rng) for _ in range(fillers)]
    ids = rng.sample(range(1, 600_000), len(scenes))  # COCO 2017 unlabeled ids are below 600,000
    facts = [scene_facts(s) for s in scenes]
    root = out / "circo"
    counts: dict[str, dict[str, int]] = {}
    first = 0
    for split in SPLITS:
        rows = []
        for query_id, p in enumerate(planned[split]):
            reference, target = ids[first], ids[first + 1]
            others = sorted(ids[j] for j, f in enumerate(facts) if p.fact in f and ids[j] != target)
            rows.append(
                CIRCOQuery(
                    id=query_id,
                    reference_img_id=reference,
                    relative_caption=p.caption,
                    shared_concept=p.shared_concept,
                    target_img_id=target,
                    gt_img_ids=(target, *others),
                    semantic_aspects=p.aspects,
                )
            )
            first += len(p.scenes)
        write_circo_queries(root, split, rows)
        counts[split] = {"queries": len(rows)}
        if split == "val":
            counts[split]["ground_truths"] = sum(len(r.gt_img_ids) for r in rows)
    order = rng.sample(range(len(scenes)), len(scenes))  # the gallery file lists images in no telling order
    images = [COCOImage(ids[j], f"{ids[j]:012d}.jpg") for j in order]
    for j in order:
        write_file(
            circo_image_dir(root) / f"{ids[j]:012d}.jpg", encode(render_scene(scenes[j], image_size), "jpg")
        )
        if pbar is not None:
            pbar.update(1)
    write_coco_image_info(root, images, (image_size, image_size))
    truth = {str(ids[j]): scene_truth(scenes[j], image_size, file=f"{ids[j]:012d}.jpg") for j in order}
    write_json_atomic(out / "truth" / "circo_scenes.json", truth, indent=1)
    counts["gallery"] = {"images": len(images)}
    return counts


def count_images(queries: dict[str, int], fillers: int, seed: int) -> int:
    """The gallery's size: each query's scenes, and the fillers."""
    planned = [_plan_query(seed, split, i) for split in SPLITS for i in range(queries.get(split, 0))]
    return sum(len(p.scenes) for p in planned) + fillers
