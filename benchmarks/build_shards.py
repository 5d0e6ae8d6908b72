"""Benchmark: coir's LaSCo shard builder against a naive baseline, same inputs and settings.

The baseline runs the same plan and writer but re-reads, decodes, resizes and re-encodes both
images of every triplet (no reuse: image cache disabled). coir's builder encodes each image once per
worker and serves every other use from its cache. Both build triplets + gallery of one synthetic
split; the script prints triplets/s and images/s per worker for both and the ratio (target >= 3x).

Without --world it renders a synthetic VQA/COCO split into a temp folder (coir.datasets.synth) with
COCO-sized photos (--image-size, default 480 px), so resizing to 384 px does real work.

How much reuse there is depends on the data: the speed-up is bounded by (2 x triplets + gallery
images) / unique images. In the synthetic world every image sits in exactly one complementary pair
(bound ~2.9x); in the published LaSCo each image is used by ~6.4 triplets (389,305 triplets over
121,479 images; bound ~7.4x). --densify adds complementary pairs inside each synthetic image family
(same question, two members with different answers, new question ids, as real VQA pairs one image
with several partners through several questions) until the reuse matches the published LaSCo.

example:
  .venv/bin/python benchmarks/build_shards.py --pairs 300 --workers 2
  .venv/bin/python benchmarks/build_shards.py --pairs 300 --workers 2 --densify
  .venv/bin/python benchmarks/build_shards.py --world runs/world --split val --workers 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__[__doc__.index("example:") :],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--world", type=Path, help="an existing synthetic world (coir data synth); default: render one"
    )
    parser.add_argument("--split", choices=("train", "val"), default="train")
    parser.add_argument("--pairs", type=int, default=300, help="complementary pairs to render (no --world)")
    parser.add_argument("--image-size", type=int, default=480, help="rendered image side in px (no --world)")
    parser.add_argument("--size", type=int, default=384, help="shard image side (shorter side resize)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shard-size", type=int, default=100)
    parser.add_argument("--densify", action="store_true", help="add pairs to reach LaSCo's image reuse")
    parser.add_argument("--keep", type=Path, help="keep outputs in this folder instead of a temp one")
    return parser.parse_args(argv)


def render_world(root: Path, split: str, pairs: int, image_size: int) -> Path:
    from coir.datasets.synth import vqa_world

    vqa_world.build_split(
        root,
        f"{split}2014",
        pairs,
        seed=0,
        image_size=image_size,
        image_share=0.15,
        text_share=0.15,
        low_agreement_share=0.1,
    )
    return root


LASCO_TRIPLETS_PER_IMAGE = 389_305 / 121_479  # published LaSCo: triplets per image (as query)


def densify(world: Path, split: str, out: Path) -> Path:
    """A copy of the split's VQA files with extra complementary pairs inside image families."""
    from collections import defaultdict
    from dataclasses import replace

    from coir.datasets.vqa import (
        read_complementary_pairs,
        read_vqa_annotations,
        read_vqa_questions,
        vqa_paths,
        write_complementary_pairs,
        write_vqa_annotations,
        write_vqa_questions,
    )

    coco_split = f"{split}2014"
    paths = vqa_paths(world / "vqa", coco_split)
    questions, annotations = read_vqa_questions(paths.questions), read_vqa_annotations(paths.annotations)
    pairs = read_complementary_pairs(paths.complementary_pairs)
    truth = json.loads((world / "truth" / f"coco_scenes_{coco_split}.json").read_text())
    families: dict[int, list[int]] = defaultdict(list)
    for image_id, scene in truth.items():
        families[scene["family"]].append(int(image_id))
    axis_q = {q.image_id: q for q in questions if q.question_id % 1000 == 0}
    axis_a = {a.image_id: a for a in annotations if a.question_id % 1000 == 0}
    images = len({q.image_id for q in questions})
    wanted = round(LASCO_TRIPLETS_PER_IMAGE * images / 2)  # pairs; each gives two triplets
    existing = {frozenset(p) for p in pairs}
    serial: dict[int, int] = defaultdict(lambda: 900)
    extra_q, extra_a, extra_p = [], [], []
    candidates = [
        (a, b)
        for members in families.values()
        for i, a in enumerate(sorted(members))
        for b in sorted(members)[i + 1 :]
    ]
    for a, b in candidates:
        if len(pairs) + len(extra_p) >= wanted:
            break
        if a not in axis_q or b not in axis_q or axis_q[a].question != axis_q[b].question:
            continue
        if axis_a[a].multiple_choice_answer == axis_a[b].multiple_choice_answer:
            continue
        if frozenset((axis_q[a].question_id, axis_q[b].question_id)) in existing:
            continue
        new = []
        for image in (a, b):
            serial[image] += 1
            qid = image * 1000 + serial[image]
            extra_q.append(replace(axis_q[image], question_id=qid))
            extra_a.append(replace(axis_a[image], question_id=qid))
            new.append(qid)
        extra_p.append((new[0], new[1]))
    dense = vqa_paths(out, coco_split)
    write_vqa_questions(dense.questions, questions + extra_q, coco_split)
    write_vqa_annotations(dense.annotations, annotations + extra_a, coco_split)
    write_complementary_pairs(dense.complementary_pairs, pairs + extra_p)
    print(f"densified: {len(pairs)} + {len(extra_p)} pairs over {images} images", file=sys.stderr)
    return out


def warm_page_cache(folder: Path) -> None:
    for path in folder.rglob("*.jpg"):
        path.read_bytes()


def run_build(
    world: Path, vqa: Path, out: Path, split: str, workers: int, size: int, shard_size: int, cache_mb: int
) -> dict:
    from coir.datasets.lasco.build import build_lasco, finalize_build
    from coir.datasets.lasco.config import LascoBuildConfig

    config = LascoBuildConfig(
        out=str(out),
        split=split,
        vqa=str(vqa),
        coco=str(world / "coco"),
        shard_size=shard_size,
        gallery_shard_size=shard_size * 2,
        workers=workers,
        image_cache_mb=cache_mb,
    )
    config.images.size = size
    start = time.perf_counter()
    report = build_lasco(config, progress=False)
    summary = finalize_build(out)
    seconds = time.perf_counter() - start
    triplets, gallery = summary["triplets"]["num_samples"], summary["gallery"]["num_samples"]
    return {
        "seconds": seconds,
        "triplets": triplets,
        "images_out": 2 * triplets + gallery,
        "images_encoded": report["images_encoded"],
        "workers": workers,
    }


def describe(name: str, r: dict) -> str:
    per = r["seconds"] * r["workers"]
    return (
        f"{name:9s} {r['seconds']:7.2f} s  {r['triplets'] / per:8.1f} triplets/s/worker  "
        f"{r['images_out'] / per:8.1f} images/s/worker  ({r['images_encoded']} decodes+encodes for "
        f"{r['images_out']} images written)"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    scratch = Path(tempfile.mkdtemp(prefix="coir-bench-")) if args.keep is None else args.keep
    try:
        world = args.world
        if world is None:
            t0 = time.perf_counter()
            world = render_world(scratch / "world", args.split, args.pairs, args.image_size)
            print(
                f"rendered {args.pairs} pairs at {args.image_size} px in {time.perf_counter() - t0:.1f} s",
                file=sys.stderr,
            )
        vqa = densify(world, args.split, scratch / "vqa-dense") if args.densify else world / "vqa"
        warm_page_cache(world / "coco")
        common = dict(split=args.split, workers=args.workers, size=args.size, shard_size=args.shard_size)
        for name in ("baseline", "coir"):
            shutil.rmtree(scratch / name, ignore_errors=True)
        baseline = run_build(world, vqa, scratch / "baseline", cache_mb=0, **common)
        ours = run_build(world, vqa, scratch / "coir", cache_mb=512, **common)
        identical = all(
            (scratch / "coir" / p.relative_to(scratch / "baseline")).read_bytes() == p.read_bytes()
            for p in (scratch / "baseline").rglob("*")
            if p.is_file()
        )
        print(
            f"LaSCo {args.split}: {ours['triplets']} triplets, {args.workers} worker(s), size {args.size}, "
            f"outputs byte-identical: {identical}"
        )
        print(describe("baseline", baseline))
        print(describe("coir", ours))
        print(f"ratio     {baseline['seconds'] / ours['seconds']:.2f}x  (target >= 3x)")
        print(json.dumps({"baseline": baseline, "coir": ours}))
    finally:
        if args.keep is None:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
