"""End-to-end LaSCo builds on a small VQA/COCO fixture: counts, texts, read-back, determinism, ranges."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import webdataset as wds
from lasco_fixture import folder_bytes, make_vqa_world, run_command, states_answer, tar_samples
from PIL import Image

from coir.common import fields

LASCO = "coir.datasets.lasco.cli"


def lasco_args(world, out: Path, *extra: str) -> list[str]:
    return [
        "--vqa",
        str(world.vqa),
        "--coco",
        str(world.coco),
        "--out",
        str(out),
        "--split",
        "val",
        "--shard-size",
        "5",
        "--size",
        "48",
        "--no-progress",
        "--set",
        "gallery_shard_size=6",
        *extra,
    ]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_vqa_world(tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="module")
def built(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("lasco") / "out"
    assert run_command(LASCO, lasco_args(world, out)) == 0
    return out


def test_counts_and_texts(world, built):
    manifest = json.loads((built / "triplets" / "manifest.json").read_text())
    report = manifest["report"]
    assert report["kept_pairs"] == world.expected_kept_pairs > 0
    assert manifest["num_samples"] == report["triplets"] == 2 * report["kept_pairs"]
    assert manifest["num_shards"] == -(-manifest["num_samples"] // 5)
    assert manifest["config"]["images"]["size"] == 48 and "workers" not in manifest["config"]
    assert manifest["code_version"]["coir"]
    samples = [s for shard in sorted((built / "triplets").glob("*.tar")) for s in tar_samples(shard)]
    assert len(samples) == manifest["num_samples"]
    for sample in samples:
        meta = json.loads(sample[fields.META])
        assert sample[fields.TEXT].decode() == meta["text"]
        assert states_answer(meta["text"], meta["target_answer"], meta["answer_type"]), meta
        assert meta["qid"] // 1000 == meta["query_image"][0]  # qid is the query side's question
        assert len(meta["query_answers"]) == len(meta["target_answers"]) == 10
        assert meta["question"] and all(isinstance(a, str) for a in meta["target_answers"])
        for field in (fields.QUERY_IMAGE, fields.TARGET_IMAGE):
            image = Image.open(io.BytesIO(sample[field]))
            assert image.format == "JPEG" and min(image.size) == 48


def test_webdataset_tarfile_index_and_official_json_agree(built):
    shards = sorted(str(p) for p in (built / "triplets").glob("triplets-*.tar"))
    by_wds = [
        (s["__key__"], s[fields.TEXT].decode(), json.loads(s[fields.META])["qid"])
        for s in wds.WebDataset(shards, shardshuffle=False, empty_check=False)
    ]
    by_tar = [
        (s["__key__"], s[fields.TEXT].decode(), json.loads(s[fields.META])["qid"])
        for p in shards
        for s in tar_samples(Path(p))
    ]
    index = pq.read_table(built / "triplets" / "index.parquet").to_pylist()
    official = json.loads((built / "lasco_val.json").read_text())
    assert by_wds == by_tar == [(r["key"], r["text"], r["qid"]) for r in index]
    assert [(o["qid"], o["query-text"], o["query-image"], o["target-image"]) for o in official] == [
        (
            r["qid"],
            r["text"],
            [r["query_image_id"], r["query_path"]],
            [r["target_image_id"], r["target_path"]],
        )
        for r in index
    ]
    assert [r["shard"] for r in index] == sorted(r["shard"] for r in index)


def test_gallery_covers_every_image_of_the_split(world, built):
    gallery = [s for p in sorted((built / "gallery").glob("gallery-*.tar")) for s in tar_samples(p)]
    assert [int(s["__key__"]) for s in gallery] == sorted(world.image_ids)
    assert all(set(s) == {"__key__", "jpg", "json"} for s in gallery)
    corpus = json.loads((built / "lasco_val_corpus.json").read_text())
    assert [c["id"] for c in corpus] == sorted(world.image_ids)
    assert all(c["path"].startswith("val/val2014/COCO_val2014_") for c in corpus)
    used = {
        i
        for o in json.loads((built / "lasco_val.json").read_text())
        for i in (o["query-image"][0], o["target-image"][0])
    }
    assert used <= set(world.image_ids)


def test_same_bytes_again_and_with_two_workers(world, built, tmp_path):
    again = tmp_path / "again"
    assert run_command(LASCO, lasco_args(world, again, "--workers", "2")) == 0
    assert folder_bytes(again) == folder_bytes(built)
    assert run_command(LASCO, lasco_args(world, again)) == 0  # finished folder: nothing to do
    assert folder_bytes(again) == folder_bytes(built)


def test_task_ranges_then_finalize_equal_single_build(world, built, tmp_path, capsys):
    out = tmp_path / "tasks"
    for task in (2, 0):
        assert run_command(LASCO, lasco_args(world, out, "--num-tasks", "3", "--task-index", str(task))) == 0
    assert run_command(LASCO, ["--out", str(out), "--finalize"]) == 2
    assert "shards are not written yet" in capsys.readouterr().err
    assert run_command(LASCO, lasco_args(world, out, "--num-tasks", "3", "--task-index", "1")) == 0
    assert not list((out / "_encoded").glob("*"))  # each task removed its encoded images
    # a killed task's encoded images, and temp files as a writer killed mid-write leaves them: never part
    # of the finished output
    (out / "_encoded" / "task-00007-of-00009").mkdir(parents=True)
    (out / "_encoded" / "task-00007-of-00009" / "images-000.bin").write_bytes(b"\xff\xd8")
    (out / "triplets" / ".manifest.json.x1y2.tmp").write_bytes(b"half")
    (out / "gallery" / "gallery-000001.tar.tmp-4242").write_bytes(b"half")
    (out / ".lasco_val.json.abc.tmp").write_bytes(b"half")
    assert run_command(LASCO, ["--out", str(out), "--finalize"]) == 0
    assert folder_bytes(out) == folder_bytes(built) and not (out / "_encoded").exists()


def test_changed_settings_in_a_used_folder_are_refused(world, built, capsys):
    assert run_command(LASCO, lasco_args(world, built, "--set", "images.jpeg_quality=70")) == 2
    assert "already holds a finished build" in capsys.readouterr().err


def test_from_official_files(world, built, tmp_path):
    out = tmp_path / "official"
    args = [
        "--from-official",
        str(built / "lasco_val.json"),
        "--official-corpus",
        str(built / "lasco_val_corpus.json"),
        "--coco",
        str(world.coco),
        "--out",
        str(out),
        "--split",
        "val",
        "--size",
        "48",
        "--no-progress",
    ]
    assert run_command(LASCO, args) == 0
    assert (out / "lasco_val.json").read_bytes() == (built / "lasco_val.json").read_bytes()
    assert (out / "lasco_val_corpus.json").read_bytes() == (built / "lasco_val_corpus.json").read_bytes()

    def ident(sample):
        meta = json.loads(sample[fields.META])
        return meta["qid"], meta["target_image"][0]

    mine = {ident(s): s for p in sorted((built / "triplets").glob("*.tar")) for s in tar_samples(p)}
    theirs = [s for p in sorted((out / "triplets").glob("*.tar")) for s in tar_samples(p)]
    assert len(theirs) == len(mine)
    for sample in theirs:
        twin = mine[ident(sample)]
        assert (
            sample[fields.QUERY_IMAGE] == twin[fields.QUERY_IMAGE]
            and sample[fields.TARGET_IMAGE] == twin[fields.TARGET_IMAGE]
        )
        assert sample[fields.TEXT] == twin[fields.TEXT]


def test_from_official_without_corpus_uses_the_triplet_images(world, built, tmp_path):
    out = tmp_path / "official"
    args = [
        "--from-official",
        str(built / "lasco_val.json"),
        "--coco",
        str(world.coco),
        "--out",
        str(out),
        "--split",
        "val",
        "--size",
        "48",
        "--no-progress",
    ]
    assert run_command(LASCO, args) == 0
    official = json.loads((built / "lasco_val.json").read_text())
    used = sorted({i for o in official for i in (o["query-image"][0], o["target-image"][0])})
    assert [c["id"] for c in json.loads((out / "lasco_val_corpus.json").read_text())] == used


def test_kill_during_parts_clean_up_still_reruns_and_finalizes(world, built, tmp_path):
    out = tmp_path / "cleanup"
    assert run_command(LASCO, lasco_args(world, out)) == 0
    # as a kill during shutil.rmtree(_parts) leaves it: manifest.json written, plan.json already gone
    parts = out / "triplets" / "_parts"
    parts.mkdir()
    (parts / "triplets-000001.json").write_bytes(b"{}")
    assert run_command(LASCO, lasco_args(world, out)) == 0
    assert not parts.exists()
    parts.mkdir()
    (parts / "triplets-000000.json").write_bytes(b"{}")
    assert run_command(LASCO, ["--out", str(out), "--finalize"]) == 0
    assert folder_bytes(out) == folder_bytes(built)
