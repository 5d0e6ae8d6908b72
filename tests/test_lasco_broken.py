"""Broken inputs: skipped and recorded (bad images, unannotated questions) or a clear error (files)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from lasco_fixture import make_vqa_world, run_command

from coir.datasets.coco import coco_image_path
from coir.datasets.vqa import vqa_paths

LASCO = "coir.datasets.lasco.cli"


@pytest.fixture
def world(tmp_path):
    return make_vqa_world(tmp_path / "world", n_images=10)


def build(world, out, *extra):
    args = [
        "--vqa",
        str(world.vqa),
        "--coco",
        str(world.coco),
        "--out",
        str(out),
        "--split",
        "val",
        "--shard-size",
        "4",
        "--size",
        "48",
        "--no-progress",
        *extra,
    ]
    return run_command(LASCO, args)


def test_bad_images_and_unannotated_question_are_skipped_and_recorded(world, tmp_path, capsys):
    truncated, missing, garbage = world.image_ids[0], world.image_ids[1], world.image_ids[2]
    path = coco_image_path(world.coco, "val2014", truncated)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    coco_image_path(world.coco, "val2014", missing).unlink()
    coco_image_path(world.coco, "val2014", garbage).write_bytes(b"this is not a jpeg")
    paths = vqa_paths(world.vqa, "val2014")
    annotations = json.loads(paths.annotations.read_text())
    dropped_qid = world.pairs[-1][1]
    annotations["annotations"] = [a for a in annotations["annotations"] if a["question_id"] != dropped_qid]
    paths.annotations.write_text(json.dumps(annotations))

    out = tmp_path / "out"
    assert build(world, out) == 0
    printed = capsys.readouterr().out
    assert "missing_image" in printed and "truncated_image" in printed

    gallery_errors = pq.read_table(out / "gallery" / "errors.parquet").to_pylist()
    by_reason = {e["reason"]: e for e in gallery_errors}
    assert set(by_reason) == {"missing_image", "truncated_image", "unreadable_image"}
    assert (
        by_reason["missing_image"]["id"] == str(missing)
        and "not found" in by_reason["missing_image"]["message"]
    )
    assert by_reason["truncated_image"]["path"].endswith(f"{truncated:012d}.jpg")
    assert "truncated" in by_reason["truncated_image"]["message"]
    gallery_ids = {r["image_id"] for r in pq.read_table(out / "gallery" / "index.parquet").to_pylist()}
    assert gallery_ids == set(world.image_ids) - {truncated, missing, garbage}

    errors = pq.read_table(out / "triplets" / "errors.parquet").to_pylist()
    manifest = json.loads((out / "triplets" / "manifest.json").read_text())
    assert manifest["num_errors"] == len(errors)
    assert sum(manifest["errors_by_reason"].values()) == len(errors)
    unannotated = [e for e in errors if e["reason"] == "missing_annotation"]
    assert {e["kind"] for e in unannotated} == {"question", "pair"}
    assert all(str(dropped_qid) in e["message"] for e in unannotated)
    bad = {truncated, missing, garbage}
    index = pq.read_table(out / "triplets" / "index.parquet").to_pylist()
    assert index and not any({r["query_image_id"], r["target_image_id"]} & bad for r in index)
    skipped = [e for e in errors if e["kind"] == "triplets"]
    assert skipped and all(
        e["reason"] in {"missing_image", "truncated_image", "unreadable_image"} for e in skipped
    )
    assert len(index) + len(skipped) == manifest["report"]["triplets"]
    official = json.loads((out / "lasco_val.json").read_text())
    assert len(official) == len(index)


@pytest.mark.parametrize("which", ["questions", "annotations", "complementary_pairs"])
def test_malformed_json_names_the_file(world, tmp_path, capsys, which):
    path = getattr(vqa_paths(world.vqa, "val2014"), which)
    path.write_text('{"questions": [')
    assert build(world, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.startswith("coir: error:") and str(path) in err and "invalid JSON" in err


def test_missing_annotation_file_names_the_file(world, tmp_path, capsys):
    path = vqa_paths(world.vqa, "val2014").annotations
    path.unlink()
    assert build(world, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert str(path) in err and "not found" in err


def test_empty_result_is_an_error(world, tmp_path, capsys):
    assert build(world, tmp_path / "out", "--set", "filters.min_agreement=11") == 2
    err = capsys.readouterr().err
    assert "no triplets left" in err and "complementary_pairs.json" in err


def test_missing_coco_folder_and_bad_config_key(world, tmp_path, capsys):
    args = ["--vqa", str(world.vqa), "--coco", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]
    assert run_command(LASCO, args) == 2
    assert "COCO image folder not found" in capsys.readouterr().err
    assert build(world, tmp_path / "out", "--set", "filters.min_agreemnt=2") == 2
    assert "min_agreemnt" in capsys.readouterr().err


def test_lm_rephraser_needs_a_model_dir(world, tmp_path, capsys):
    assert build(world, tmp_path / "out", "--rephraser", "lm") == 2
    assert "rephraser.model_dir" in capsys.readouterr().err
