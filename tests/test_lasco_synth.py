"""LaSCo and CIRR/FashionIQ shards on the synthetic world (coir.datasets.synth), and the published
corpus format at its real size."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import webdataset as wds
from lasco_fixture import run_command, states_answer, tar_samples

from coir.datasets.lasco.build import plan_lasco
from coir.datasets.lasco.config import LascoBuildConfig
from coir.datasets.lasco_files import write_lasco_triplets
from coir.datasets.records import LascoTriplet


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from coir.datasets.synth.build import build_world

    root = tmp_path_factory.mktemp("synth") / "world"
    build_world(root, seed=0, scale="tiny", progress=False)
    return root


@pytest.fixture(scope="module")
def lasco(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("synth-lasco") / "lasco"
    args = [
        "--vqa",
        str(world / "vqa"),
        "--coco",
        str(world / "coco"),
        "--out",
        str(out),
        "--split",
        "val",
        "--shard-size",
        "40",
        "--workers",
        "2",
        "--no-progress",
    ]
    assert run_command("coir.datasets.lasco.cli", args) == 0
    return out


def test_synthetic_lasco_counts_texts_and_read_back(world, lasco):
    manifest = json.loads((lasco / "triplets" / "manifest.json").read_text())
    report = manifest["report"]
    assert report["triplets"] == 2 * report["kept_pairs"] == manifest["num_samples"] > 0
    pairs = json.loads((world / "vqa" / "v2_mscoco_val2014_complementary_pairs.json").read_text())
    dropped = sum(v for k, v in report.items() if k.startswith(("dropped_", "skipped_")))
    assert report["pairs"] == len(pairs) == report["kept_pairs"] + dropped
    shards = sorted(str(p) for p in (lasco / "triplets").glob("*.tar"))
    streamed = list(wds.WebDataset(shards, shardshuffle=False))
    plain = [s for p in shards for s in tar_samples(Path(p))]
    index = pq.read_table(lasco / "triplets" / "index.parquet").to_pylist()
    official = json.loads((lasco / "lasco_val.json").read_text())
    assert [s["__key__"] for s in streamed] == [s["__key__"] for s in plain] == [r["key"] for r in index]
    assert (
        [o["query-text"] for o in official]
        == [s["txt"].decode() for s in plain]
        == [r["text"] for r in index]
    )
    for sample in plain:
        meta = json.loads(sample["json"])
        assert states_answer(meta["text"], meta["target_answer"], meta["answer_type"]), meta


def test_synthetic_gallery_holds_every_image_of_the_split(world, lasco):
    questions = json.loads((world / "vqa" / "v2_OpenEnded_mscoco_val2014_questions.json").read_text())
    image_ids = {q["image_id"] for q in questions["questions"]}
    corpus = json.loads((lasco / "lasco_val_corpus.json").read_text())
    assert {c["id"] for c in corpus} == image_ids
    gallery = [s for p in sorted((lasco / "gallery").glob("*.tar")) for s in tar_samples(p)]
    assert {int(s["__key__"]) for s in gallery} == image_ids


def test_synthetic_inspect(lasco, capsys):
    assert run_command("coir.datasets.shards.inspect_cli", [str(lasco), "--samples", "1"]) == 0
    assert capsys.readouterr().out.count("OK") == 2


@pytest.mark.parametrize(
    ("dataset", "split", "folder"),
    [("cirr", "val", "triplets"), ("cirr", "test1", "queries"), ("fashioniq", "train", "triplets")],
)
def test_synthetic_cirr_and_fashioniq(world, tmp_path, dataset, split, folder):
    out = tmp_path / "out"
    args = [
        dataset,
        "--root",
        str(world / dataset),
        "--split",
        split,
        "--out",
        str(out),
        "--size",
        "32",
        "--no-progress",
    ]
    assert run_command("coir.datasets.shards.cli", args) == 0
    manifest = json.loads((out / folder / "manifest.json").read_text())
    assert manifest["num_samples"] > 0 and manifest["num_errors"] == 0
    assert json.loads((out / "gallery" / "manifest.json").read_text())["num_errors"] == 0
    sample = tar_samples(out / folder / f"{folder}-000000.tar")[0]
    assert ("target.jpg" in sample) == (folder == "triplets") and sample["txt"]


def test_official_corpus_at_real_size_plans_the_gallery(real_data, tmp_path):
    corpus = real_data / "lasco" / "lasco_val_corpus.json"
    triplets = tmp_path / "lasco_val.json"
    write_lasco_triplets(
        triplets,
        [
            LascoTriplet(
                7,
                42,
                "val2014/COCO_val2014_000000000042.jpg",
                "make it red",
                73,
                "val2014/COCO_val2014_000000000073.jpg",
            )
        ],
    )
    (tmp_path / "coco").mkdir()
    config = LascoBuildConfig(
        out=str(tmp_path / "out"),
        coco=str(tmp_path / "coco"),
        from_official=str(triplets),
        official_corpus=str(corpus),
    )
    triplet_set, gallery_set = plan_lasco(config)
    assert len(triplet_set.samples) == 1 and triplet_set.samples[0].key == "7_73"
    assert len(gallery_set.samples) == 39_826
    first = gallery_set.samples[0]
    assert first.key == "42" and first.row["path"] == "val2014/COCO_val2014_000000000042.jpg"
    assert first.images[0][1] == str(tmp_path / "coco" / "val2014" / "COCO_val2014_000000000042.jpg")
