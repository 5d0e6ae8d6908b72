"""The readers on the real annotation files, at their real sizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coir.datasets.cirr import (
    cirr_captions_path,
    cirr_image_path,
    read_cirr_image_split,
    read_cirr_triplets,
)
from coir.datasets.coco import coco_image_name, coco_image_path, coco_relpath, parse_coco_name
from coir.datasets.fashioniq import fashioniq_image_path, read_fashioniq_image_split, read_fashioniq_triplets
from coir.datasets.lasco_files import corpus_image_relpath, read_lasco_corpus, read_lasco_val_corpus
from coir.datasets.records import FASHIONIQ_CATEGORIES, CIRRTriplet


def test_cirr_val(real_data: Path) -> None:
    root = real_data / "cirr"
    triplets = read_cirr_triplets(root, "val")
    images = read_cirr_image_split(root, "val")
    assert len(triplets) == 4181
    assert len(images) == 2297
    assert all(isinstance(t, CIRRTriplet) for t in triplets)
    assert len({t.pairid for t in triplets}) == 4181
    raw = json.loads(cirr_captions_path(root, "val").read_text())
    published = sum(r["target_hard"] in r["target_soft"] for r in raw)  # 4144 in the release
    assert sum(t.target_hard in t.target_soft for t in triplets) == published > 0
    for t in triplets:
        assert len(t.img_set.members) == 6
        assert t.reference in t.img_set.members and t.target_hard in t.img_set.members
        assert t.reference in images and t.target_hard in images
        assert set(t.target_soft.values()) <= {1.0, 0.5, 0.2, -1.0} and t.target_soft.keys() <= images.keys()
        assert set(t.img_set.members) <= images.keys()
        assert t.caption.strip()
        assert t.img_set.reference_rank in range(6) and t.img_set.target_rank in range(6)
    first = triplets[0]
    assert (first.pairid, first.reference, first.target_hard) == (12060, "dev-244-0-img0", "dev-1028-1-img1")
    assert first.caption == "show three bottles of soft drink"
    assert images["dev-244-0-img0"] == "./dev/dev-244-0-img0.png"
    assert cirr_image_path(root, images["dev-244-0-img0"]) == root / "dev" / "dev-244-0-img0.png"


@pytest.mark.parametrize(
    ("category", "n_queries", "n_images"),
    [("dress", 2017, 3817), ("shirt", 2038, 6346), ("toptee", 1961, 5373)],
)
def test_fashioniq_val(real_data: Path, category: str, n_queries: int, n_images: int) -> None:
    root = real_data / "fashioniq"
    triplets = read_fashioniq_triplets(root, category, "val")
    asins = read_fashioniq_image_split(root, category, "val")
    assert (len(triplets), len(asins)) == (n_queries, n_images)
    assert len(set(asins)) == n_images
    known = set(asins)
    for t in triplets:
        assert t.category == category
        assert len(t.captions) == 2
        assert t.candidate in known and t.target in known
    assert fashioniq_image_path(root, asins[0]) == root / "images" / f"{asins[0]}.jpg"
    assert category in FASHIONIQ_CATEGORIES


def test_fashioniq_first_record_matches_file(real_data: Path) -> None:
    root = real_data / "fashioniq"
    raw = json.loads((root / "captions" / "cap.dress.val.json").read_text())[0]
    t = read_fashioniq_triplets(root, "dress", "val")[0]
    assert (t.candidate, t.target, list(t.captions)) == (raw["candidate"], raw["target"], raw["captions"])


def test_lasco_val_corpus(real_data: Path) -> None:
    path = real_data / "lasco" / "lasco_val_corpus.json"
    corpus = read_lasco_val_corpus(path)
    assert len(corpus) == 39826
    assert len({im.id for im in corpus}) == 39826
    assert corpus[0].id == 42 and corpus[0].path == "val/val2014/COCO_val2014_000000000042.jpg"
    assert corpus[-1].id == 581929  # file order kept
    for im in corpus:
        assert im.path.startswith("val/val2014/")
        rel = corpus_image_relpath(im.path)
        assert rel == coco_relpath("val2014", im.id)
        assert parse_coco_name(rel) == ("val2014", im.id)
    assert read_lasco_corpus(path) == corpus  # either-form reader picks the list form


def test_coco_names(tmp_path: Path) -> None:
    assert coco_image_name("val2014", 42) == "COCO_val2014_000000000042.jpg"
    assert coco_relpath("train2014", 9) == "train2014/COCO_train2014_000000000009.jpg"
    assert coco_image_path(tmp_path, "val2014", 42) == tmp_path / "val2014" / "COCO_val2014_000000000042.jpg"
    assert parse_coco_name("val/val2014/COCO_val2014_000000581929.jpg") == ("val2014", 581929)
    with pytest.raises(ValueError, match="not a COCO image name"):
        parse_coco_name("dev-244-0-img0.png")
    assert corpus_image_relpath("train/train2014/x.jpg") == "train2014/x.jpg"
    assert corpus_image_relpath("val2014/x.jpg") == "val2014/x.jpg"
