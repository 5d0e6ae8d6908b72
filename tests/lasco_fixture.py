"""A tiny VQA 2.0 + COCO world written in the official layouts, for the LaSCo and shard tests.

Images are small JPEGs drawn with PIL; each image answers three questions (colour, count, yes/no)
and takes part in several complementary pairs, so the builder's image reuse matters. Some pairs
are meant to be filtered (equal answers, low agreement) and `expected_kept_pairs` says how many
survive the default filters.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from coir.datasets.coco import coco_image_path
from coir.datasets.lasco.normalize import normalize_answer
from coir.datasets.records import VQAAnnotation, VQAAnswer, VQAQuestion
from coir.datasets.vqa import vqa_paths, write_complementary_pairs, write_vqa_annotations, write_vqa_questions

COLORS = ["red", "blue", "green", "yellow", "white", "black", "orange", "purple"]
QUESTIONS = [
    ("What color is the bus?", "what color is the", "other"),
    ("How many dogs are there?", "how many", "number"),
    ("Is the man wearing a hat?", "is the", "yes/no"),
]


@dataclass
class VQAWorld:
    root: Path
    vqa: Path
    coco: Path
    split: str
    image_ids: list[int]
    pairs: list[tuple[int, int]]
    expected_kept_pairs: int


def _answer(kind: str, rng: random.Random) -> str:
    if kind == "other":
        return rng.choice(COLORS)
    if kind == "number":
        return str(rng.randint(1, 5))
    return rng.choice(["yes", "no"])


def _image(path: Path, rng: random.Random, size: tuple[int, int]) -> None:
    image = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x, y = rng.randrange(size[0] - 10), rng.randrange(size[1] - 10)
        draw.rectangle(
            (x, y, x + rng.randint(6, 30), y + rng.randint(6, 30)),
            fill=tuple(rng.randrange(256) for _ in range(3)),
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="JPEG", quality=90)


def make_vqa_world(
    root: Path, n_images: int = 16, seed: int = 0, size: tuple[int, int] = (96, 72), split: str = "val2014"
) -> VQAWorld:
    rng = random.Random(seed)
    image_ids = [100 + 7 * i for i in range(n_images)]
    questions, annotations, answers = [], [], {}
    for image_id in image_ids:
        _image(coco_image_path(root / "coco", split, image_id), rng, size)
        for k, (text, qtype, atype) in enumerate(QUESTIONS):
            qid = image_id * 1000 + k
            answer = _answer(atype, rng)
            low_agreement = rng.random() < 0.1
            agree = 2 if low_agreement else 8
            given = [answer] * agree + [_answer(atype, rng) for _ in range(10 - agree)]
            if atype == "number" and rng.random() < 0.3:
                given[0] = {"1": "one", "2": "two", "3": "three", "4": "four", "5": "five"}[answer]
            questions.append(VQAQuestion(qid, image_id, text))
            annotations.append(
                VQAAnnotation(
                    qid,
                    image_id,
                    qtype,
                    atype,
                    answer,
                    tuple(VQAAnswer(a, "yes", j + 1) for j, a in enumerate(given)),
                )
            )
            answers[qid] = (answer, sum(normalize_answer(g) == answer for g in given))
    pairs, kept = [], 0
    for i, image_id in enumerate(image_ids):
        for step in (1, 3):
            if i + step >= len(image_ids):
                continue
            k = (i + step) % len(QUESTIONS)
            q1, q2 = image_id * 1000 + k, image_ids[i + step] * 1000 + k
            pairs.append((q1, q2))
            (a1, g1), (a2, g2) = answers[q1], answers[q2]
            kept += a1 != a2 and min(g1, g2) >= 3
    paths = vqa_paths(root / "vqa", split)
    write_vqa_questions(paths.questions, questions, split)
    write_vqa_annotations(paths.annotations, annotations, split)
    write_complementary_pairs(paths.complementary_pairs, pairs)
    return VQAWorld(root, root / "vqa", root / "coco", split, image_ids, pairs, kept)


NUMBER_WORDS = {"0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six"}


def states_answer(text: str, answer: str, answer_type: str) -> bool:
    """Does a modification text state this (normalised) answer?"""
    words = text.lower().replace(",", " ").split()
    if answer_type == "yes/no":
        negated = any(
            w in ("not", "no", "isn't", "aren't", "doesn't", "don't") or w.endswith("n't") for w in words
        )
        return negated == (answer == "no")
    if answer_type == "number":
        return answer in words or NUMBER_WORDS.get(answer, "\0") in words
    return normalize_answer(answer) in normalize_answer(text)


# ---------------------------------------------------------------- CIRR / FashionIQ fixtures


def make_cirr(root: Path, split: str = "val", n: int = 6, seed: int = 1) -> Path:
    from coir.datasets.cirr import write_cirr_image_split, write_cirr_triplets
    from coir.datasets.records import CIRRImageSet, CIRRTriplet

    rng = random.Random(seed)
    folder = {"train": "train/0", "val": "dev", "test1": "test1"}[split]
    prefix = {"train": "train", "val": "dev", "test1": "test1"}[split]
    names = [f"{prefix}-{i}-0-img{i % 2}" for i in range(n + 1)]
    mapping = {name: f"./{folder}/{name}.png" for name in names}
    for rel in mapping.values():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (80, 60), tuple(rng.randrange(256) for _ in range(3))).save(path, format="PNG")
    triplets = []
    for i in range(n):
        members = tuple(names[(i + j) % len(names)] for j in range(6))
        target = None if split == "test1" else names[i + 1]
        triplets.append(
            CIRRTriplet(
                pairid=i,
                reference=names[i],
                caption=f"make it brighter {i}",
                img_set=CIRRImageSet(
                    i, members, None if target is None else 0, None if target is None else 1
                ),
                target_hard=target,
                target_soft={} if target is None else {target: 1.0},
            )
        )
    write_cirr_triplets(root, split, triplets)
    write_cirr_image_split(root, split, mapping)
    return root


def make_fashioniq(root: Path, split: str = "val", n: int = 4, seed: int = 2) -> Path:
    from coir.datasets.fashioniq import write_fashioniq_image_split, write_fashioniq_triplets
    from coir.datasets.records import FASHIONIQ_CATEGORIES, FashionIQTriplet

    rng = random.Random(seed)
    for c, category in enumerate(FASHIONIQ_CATEGORIES):
        asins = [f"B{c}{i:08d}" for i in range(n + 1)]
        for asin in asins:
            path = root / "images" / f"{asin}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (50, 70), tuple(rng.randrange(256) for _ in range(3))).save(path, format="JPEG")
        triplets = [
            FashionIQTriplet(
                category,
                asins[i],
                ("is darker.", "has long sleeves"),
                None if split == "test" else asins[i + 1],
            )
            for i in range(n)
        ]
        write_fashioniq_triplets(root, category, split, triplets)
        write_fashioniq_image_split(root, category, split, asins)
    return root


# ---------------------------------------------------------------- running commands and reading shards


def run_command(module_name: str, argv: list[str]) -> int:
    """Run one `coir` command module the way coir.pipeline.cli.main does (CoirError -> exit 2)."""
    import argparse
    import importlib
    import sys

    from coir.common.errors import CoirError

    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=module_name)
    module.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return int(module.run(args) or 0)
    except CoirError as error:
        print(f"coir: error: {error}", file=sys.stderr)
        return 2


def tar_samples(path: Path) -> list[dict[str, bytes]]:
    """Samples of a shard read with plain tarfile: [{"__key__": key, field: bytes}]."""
    import tarfile

    samples: list[dict] = []
    with tarfile.open(path) as tar:
        for member in tar:
            key, _, field = member.name.partition(".")
            if not samples or samples[-1]["__key__"] != key:
                samples.append({"__key__": key})
            samples[-1][field] = tar.extractfile(member).read()
    return samples


def folder_bytes(root: Path) -> dict[str, bytes]:
    """Every file below root (relative path -> bytes), for byte-identity checks."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


if __name__ == "__main__":  # used by the kill test: python lasco_fixture.py MODULE ARGS...
    import sys

    sys.exit(run_command(sys.argv[1], sys.argv[2:]))
