"""`coir data shards cirr|fashioniq`: triplets, galleries and test-split queries in the LaSCo schema."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import webdataset as wds
from lasco_fixture import folder_bytes, make_cirr, make_fashioniq, run_command, tar_samples

from coir.common import fields

SHARDS = "coir.datasets.shards.cli"


def samples(folder):
    return [s for p in sorted(folder.glob("*.tar")) for s in tar_samples(p)]


def test_cirr_val_triplets_and_gallery(tmp_path):
    root = make_cirr(tmp_path / "cirr", "val", n=6)
    out = tmp_path / "out"
    args = [
        "cirr",
        "--root",
        str(root),
        "--split",
        "val",
        "--out",
        str(out),
        "--shard-size",
        "4",
        "--size",
        "32",
        "--no-progress",
    ]
    assert run_command(SHARDS, args) == 0
    triplets = samples(out / "triplets")
    assert [s["__key__"] for s in triplets] == [str(i) for i in range(6)]
    assert all(
        set(s) == {"__key__", fields.QUERY_IMAGE, fields.TARGET_IMAGE, fields.TEXT, fields.META}
        for s in triplets
    )
    meta = json.loads(triplets[2][fields.META])
    assert meta["reference"] == "dev-2-0-img0" and meta["target_hard"] == "dev-3-0-img1"
    assert len(meta["img_set"]["members"]) == 6 and triplets[2][fields.TEXT] == b"make it brighter 2"
    gallery = samples(out / "gallery")
    assert sorted(s["__key__"] for s in gallery) == sorted(f"dev-{i}-0-img{i % 2}" for i in range(7))
    index = pq.read_table(out / "triplets" / "index.parquet").to_pylist()
    streamed = list(
        wds.WebDataset(sorted(str(p) for p in (out / "triplets").glob("*.tar")), shardshuffle=False)
    )
    assert [r["key"] for r in index] == [s["__key__"] for s in streamed] == [s["__key__"] for s in triplets]
    again = tmp_path / "again"
    assert run_command(SHARDS, [*args[:6], str(again), *args[7:], "--workers", "2"]) == 0
    assert folder_bytes(again) == folder_bytes(out)


def test_cirr_test1_gives_queries_without_targets(tmp_path):
    root = make_cirr(tmp_path / "cirr", "test1", n=3)
    out = tmp_path / "out"
    assert (
        run_command(
            SHARDS, ["cirr", "--root", str(root), "--split", "test1", "--out", str(out), "--no-progress"]
        )
        == 0
    )
    assert not (out / "triplets").exists()
    queries = samples(out / "queries")
    assert len(queries) == 3 and all(
        fields.TARGET_IMAGE not in s and fields.QUERY_IMAGE in s for s in queries
    )
    assert json.loads((out / "queries" / "manifest.json").read_text())["kind"] == "queries"
    assert len(samples(out / "gallery")) == 4


def test_cirr_unknown_image_is_recorded(tmp_path):
    root = make_cirr(tmp_path / "cirr", "val", n=3)
    split_file = root / "image_splits" / "split.rc2.val.json"
    mapping = json.loads(split_file.read_text())
    del mapping["dev-1-0-img1"]
    split_file.write_text(json.dumps(mapping))
    out = tmp_path / "out"
    assert (
        run_command(
            SHARDS, ["cirr", "--root", str(root), "--split", "val", "--out", str(out), "--no-progress"]
        )
        == 0
    )
    errors = pq.read_table(out / "triplets" / "errors.parquet").to_pylist()
    assert [(e["id"], e["reason"]) for e in errors] == [("0", "unknown_image"), ("1", "unknown_image")]
    assert [s["__key__"] for s in samples(out / "triplets")] == ["2"]


def test_fashioniq_keeps_both_captions_and_joins_them(tmp_path):
    root = make_fashioniq(tmp_path / "fiq", "val", n=3)
    out = tmp_path / "out"
    args = [
        "fashioniq",
        "--root",
        str(root),
        "--split",
        "val",
        "--out",
        str(out),
        "--size",
        "32",
        "--no-progress",
    ]
    assert run_command(SHARDS, args) == 0
    triplets = samples(out / "triplets")
    assert len(triplets) == 9 and triplets[0]["__key__"] == "dress_000000"
    meta = json.loads(triplets[0][fields.META])
    assert meta["captions"] == ["is darker.", "has long sleeves"] and meta["category"] == "dress"
    assert triplets[0][fields.TEXT] == b"Is darker and has long sleeves"  # CLIP4Cir joining, as eval does
    from coir.eval.benchmarks.fashioniq import fashioniq_tasks

    evaluated = [q.text for task in fashioniq_tasks(root, "val") for q in task.queries]
    assert [t[fields.TEXT].decode() for t in triplets] == evaluated
    gallery = samples(out / "gallery")
    assert len(gallery) == 12 and gallery[0]["__key__"] == "dress_B000000000"
    one = tmp_path / "dress"
    assert run_command(SHARDS, [*args[:6], str(one), *args[7:], "--set", "categories=[dress]"]) == 0
    assert len(samples(one / "triplets")) == 3


def test_fashioniq_test_split_and_missing_file(tmp_path, capsys):
    root = make_fashioniq(tmp_path / "fiq", "test", n=2)
    out = tmp_path / "out"
    assert (
        run_command(
            SHARDS, ["fashioniq", "--root", str(root), "--split", "test", "--out", str(out), "--no-progress"]
        )
        == 0
    )
    assert all(fields.TARGET_IMAGE not in s for s in samples(out / "queries"))
    (root / "captions" / "cap.shirt.test.json").unlink()
    assert (
        run_command(
            SHARDS, ["fashioniq", "--root", str(root), "--split", "test", "--out", str(tmp_path / "o2")]
        )
        == 2
    )
    assert "cap.shirt.test.json" in capsys.readouterr().err
