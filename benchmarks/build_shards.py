"""Benchmark: coir's LaSCo shard builder against its limit and against a naive baseline, one run.

For each worker count of --workers (default 1 and 2), on the same images and settings:
- bare loop: decode (reduced-scale draft when possible) -> bicubic resize -> JPEG encode of every
  unique source image the build reads, nothing else, split over the workers as forked processes;
- builder: build_lasco + finalize_build (each distinct image encoded once, the images split evenly over
  the workers, then the shards written from the encoded bytes: datasets/shards/encoded_images.py);
- baseline: the same build with reuse_images=false (both images of every triplet decoded, resized and
  encoded again as its shard is written: the per-triplet approach).
The bare loop and the builder alternate --rounds times (medians reported; the baseline runs once).
Prints unique images/s per worker of the bare loop and of the builder and their ratio (target >= 0.9),
the builder's speed-up over the baseline as a share of the reuse bound (target >= 0.8 with --densify),
whether builder and baseline outputs are byte-identical, and the scaling from 1 to 2 workers.

Without --world it renders a synthetic VQA/COCO split into a temp folder (coir.datasets.synth) with
COCO-sized photos (--image-size, default 480 px), so resizing to 384 px does real work.

How much reuse there is depends on the data: the speed-up is bounded by (2 x triplets + gallery
images) / unique images. In the synthetic world every image sits in exactly one complementary pair
(bound ~2.9x); in the published LaSCo each image is used by ~6.4 triplets (389,305 triplets over
121,479 images; bound ~7.4x). --densify adds complementary pairs inside each synthetic image family
(same question, two members with different answers, new question ids, as real VQA pairs one image
with several partners through several questions) until the reuse matches the published LaSCo.

example:
  .venv/bin/python benchmarks/build_shards.py --pairs 300 --densify
  .venv/bin/python benchmarks/build_shards.py --pairs 300 --workers 1
  .venv/bin/python benchmarks/build_shards.py --world runs/world --split val --workers 1
"""

from __future__ import annotations

import argparse
import io
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
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="worker counts to measure, in turn"
    )
    parser.add_argument("--shard-size", type=int, default=100)
    parser.add_argument("--densify", action="store_true", help="add pairs to reach LaSCo's image reuse")
    parser.add_argument(
        "--rounds", type=int, default=3, help="bare loop and builder alternated this often; medians reported"
    )
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


def build_config(
    world: Path, vqa: Path, out: Path, split: str, workers: int, size: int, shard_size: int, reuse: bool
):
    from coir.datasets.lasco.config import LascoBuildConfig

    config = LascoBuildConfig(
        out=str(out),
        split=split,
        vqa=str(vqa),
        coco=str(world / "coco"),
        shard_size=shard_size,
        gallery_shard_size=shard_size * 2,
        workers=workers,
        reuse_images=reuse,
    )
    config.images.size = size
    return config


def unique_image_paths(config) -> list[str]:
    """Every distinct source image the build reads (triplets and gallery), in plan order."""
    from coir.datasets.lasco.build import plan_lasco
    from coir.datasets.shards.encoded_images import distinct_paths

    samples = (sample for shard_set in plan_lasco(config) for sample in shard_set.samples)
    return distinct_paths([path for _, path in sample.images] for sample in samples)


def bare_encode(paths: list[str], size: int, quality: int = 90) -> int:
    """The limit: decode (reduced-scale draft when possible), bicubic resize of the shorter side to
    `size`, JPEG encode; nothing else. Returns the bytes produced (so nothing is optimised away)."""
    from PIL import Image

    total = 0
    for path in paths:
        with Image.open(path) as image:
            width, height = image.size
            scale = min(1.0, size / min(width, height))
            target = (max(1, round(width * scale)), max(1, round(height * scale)))
            image.draft("RGB", target)
            image.load()
            if image.mode != "RGB":
                image = image.convert("RGB")
            if image.size != target:
                image = image.resize(target, Image.Resampling.BICUBIC)
            out = io.BytesIO()
            image.save(out, format="JPEG", quality=quality)
            total += out.tell()
    return total


def run_bare(paths: list[str], size: int, workers: int) -> dict:
    """The bare loop over `paths` in `workers` forked processes (contiguous halves, as the builder splits)."""
    import multiprocessing as mp

    chunks = [paths[i * len(paths) // workers : (i + 1) * len(paths) // workers] for i in range(workers)]
    start = time.perf_counter()
    if workers == 1:
        bare_encode(paths, size)
    else:
        with mp.get_context("fork").Pool(workers) as pool:
            pool.starmap(bare_encode, [(chunk, size) for chunk in chunks])
    return {"seconds": time.perf_counter() - start, "unique": len(paths), "workers": workers}


def run_build(config) -> dict:
    from coir.datasets.lasco.build import build_lasco, finalize_build

    start = time.perf_counter()
    report = build_lasco(config, progress=False)
    built = time.perf_counter()
    summary = finalize_build(config.out)
    end = time.perf_counter()
    triplets, gallery = summary["triplets"]["num_samples"], summary["gallery"]["num_samples"]
    return {
        "seconds": end - start,
        "finalize_seconds": end - built,
        "triplets": triplets,
        "images_out": 2 * triplets + gallery,
        "images_encoded": report["images_encoded"],
        "workers": config.workers,
    }


def median_run(runs: list[dict]) -> dict:
    """The run of median duration, with every round's seconds."""
    ordered = sorted(runs, key=lambda run: run["seconds"])
    return {**ordered[len(ordered) // 2], "rounds": [run["seconds"] for run in runs]}


def per_worker(result: dict, unique: int) -> float:
    """Unique images per second per worker."""
    return unique / (result["seconds"] * result["workers"])


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

        def config(name: str, workers: int, reuse: bool):
            shutil.rmtree(scratch / name, ignore_errors=True)
            return build_config(
                world, vqa, scratch / name, args.split, workers, args.size, args.shard_size, reuse
            )

        paths = unique_image_paths(config("plan", 1, False))
        unique = len(paths)
        rows: dict[int, dict] = {}
        for workers in args.workers:
            print(f"{workers} worker(s): bare loop, builder, per-triplet baseline ...", file=sys.stderr)
            bares, builds = [], []
            for _ in range(args.rounds):  # alternated: load from other processes hits both alike
                bares.append(run_bare(paths, args.size, workers))
                builds.append(run_build(config(f"coir-{workers}", workers, True)))
            bare, ours = median_run(bares), median_run(builds)
            baseline = run_build(config(f"baseline-{workers}", workers, False))
            identical = all(
                (scratch / f"coir-{workers}" / p.relative_to(scratch / f"baseline-{workers}")).read_bytes()
                == p.read_bytes()
                for p in (scratch / f"baseline-{workers}").rglob("*")
                if p.is_file()
            )
            rows[workers] = {"bare": bare, "coir": ours, "baseline": baseline, "identical": identical}
        print_report(rows, unique, args, os.getloadavg())
    finally:
        if args.keep is None:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


def print_report(rows: dict[int, dict], unique: int, args: argparse.Namespace, load: tuple) -> None:
    first = next(iter(rows.values()))["coir"]
    bound = first["images_out"] / unique
    print(
        f"LaSCo {args.split}: {first['triplets']} triplets, {unique} unique images, "
        f"{first['images_out']} images written, size {args.size}, load average {load[0]:.1f} "
        f"on {os.cpu_count()} cores; reuse bound {bound:.2f}x"
    )
    print(
        "workers | bare img/s/w | builder img/s/w | builder/bare | encodes | finalize s | "
        "baseline s | coir s | speed-up | of bound | identical"
    )
    for workers, r in rows.items():
        bare, ours, base = (per_worker(r[k], unique) for k in ("bare", "coir", "baseline"))
        speedup = r["baseline"]["seconds"] / r["coir"]["seconds"]
        print(
            f"{workers:7d} | {bare:12.1f} | {ours:15.1f} | {ours / bare:11.2f}x | "
            f"{r['coir']['images_encoded']:7d} | {r['coir']['finalize_seconds']:10.2f} | "
            f"{r['baseline']['seconds']:10.2f} | {r['coir']['seconds']:6.2f} | {speedup:7.2f}x | "
            f"{speedup / bound:8.2f} | {r['identical']}"
        )
    for workers, r in rows.items():
        ratios = ", ".join(
            f"{b / c:.2f}" for b, c in zip(r["bare"]["rounds"], r["coir"]["rounds"], strict=True)
        )
        print(f"{workers} worker(s), builder / bare per round: {ratios}")
    if 1 in rows and 2 in rows:
        for name in ("bare", "coir"):
            scaling = rows[1][name]["seconds"] / rows[2][name]["seconds"]
            print(f"scaling 1 -> 2 workers, {name}: {scaling:.2f}x the throughput")
    print("targets: builder/bare >= 0.9; with --densify, speed-up >= 0.8 of the reuse bound")
    print(json.dumps({"unique_images": unique, "load": load, "runs": {str(w): r for w, r in rows.items()}}))


if __name__ == "__main__":
    sys.exit(main())
