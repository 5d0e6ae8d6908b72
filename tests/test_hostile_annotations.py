"""Hostile annotation files: image paths stay inside their roots (refused and recorded in the error table
with the file and record), and a repeated id, key or gallery name is an error before anything is written,
at build and at evaluation, never a silent last-wins."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from lasco_fixture import make_cirr, make_fashioniq, make_vqa_world, run_command, tar_samples
from PIL import Image

from coir.common.errors import CoirError, DataFormatError
from coir.datasets.coco import coco_image_path
from coir.datasets.vqa import vqa_paths

LASCO = "coir.datasets.lasco.cli"
SHARDS = "coir.datasets.shards.cli"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_vqa_world(tmp_path_factory.mktemp("world"), n_images=6)


def _path(image_id: int) -> str:
    return f"val2014/COCO_val2014_{image_id:012d}.jpg"


def _triplet(qid: int, query: int, target: int, query_path: str = "", target_path: str = "") -> dict:
    return {
        "qid": qid,
        "query-image": [query, query_path or _path(query)],
        "query-text": f"text {qid}",
        "target-image": [target, target_path or _path(target)],
    }


def _official(world, folder: Path, triplets: list[dict], corpus: list[dict] | None = None) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lasco_val.json").write_text(json.dumps(triplets))
    args = ["--from-official", str(folder / "lasco_val.json"), "--coco", str(world.coco)]
    if corpus is not None:
        (folder / "corpus.json").write_text(json.dumps(corpus))
        args += ["--official-corpus", str(folder / "corpus.json")]
    return run_command(
        LASCO, [*args, "--out", str(folder / "out"), "--split", "val", "--size", "32", "--no-progress"]
    )


def _clean_triplets(world) -> list[dict]:
    ids = world.image_ids
    return [_triplet(1000 + i, ids[i], ids[i + 1]) for i in range(len(ids) - 1)]


def _jpeg(path: Path, colour: tuple[int, int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), colour).save(path, format="JPEG")
    return path


def _nothing_written(out: Path) -> bool:
    return not out.exists() or not any(out.rglob("*.tar")) and not any(out.rglob("manifest.json"))


# -- paths inside their roots -----------------------------------------------------------------------
def test_lasco_paths_outside_the_coco_root_are_refused_and_recorded(world, tmp_path):
    # real images where the hostile paths lead: before the check they were opened and embedded
    _jpeg(world.coco.parent.parent / "x.jpg", (250, 0, 0))
    outside = _jpeg(tmp_path / "elsewhere" / "abs.jpg", (0, 250, 0))
    triplets = _clean_triplets(world)
    ids = world.image_ids
    triplets += [
        _triplet(2001, 900001, ids[0], query_path="../../x.jpg"),
        _triplet(2002, ids[1], 900002, target_path=str(outside)),
        _triplet(2003, 900003, ids[2], query_path="/etc/passwd"),
    ]
    folder = tmp_path / "lasco"
    assert _official(world, folder, triplets) == 0
    out = folder / "out"
    kept = {r["qid"] for r in pq.read_table(out / "triplets" / "index.parquet").to_pylist()}
    assert kept == {t["qid"] for t in _clean_triplets(world)}
    errors = pq.read_table(out / "triplets" / "errors.parquet").to_pylist()
    assert {(e["id"], e["reason"]) for e in errors} == {
        ("2001", "bad_path"),
        ("2002", "bad_path"),
        ("2003", "bad_path"),
    }
    for error, record in zip(sorted(errors, key=lambda e: e["id"]), (5, 6, 7), strict=True):
        assert error["path"] == str(folder / "lasco_val.json") and f"record {record}" in error["message"]
    gallery = {s["__key__"] for p in (out / "gallery").glob("*.tar") for s in tar_samples(p)}
    assert gallery == {str(i) for i in ids}  # none of 900001..900003


def test_cirr_paths_outside_the_root_are_refused_at_build_and_at_evaluation(tmp_path):
    from coir.eval.benchmarks.cirr import cirr_task

    root = make_cirr(tmp_path / "cirr", "val", n=3)
    Image.new("RGB", (8, 8), (1, 2, 3)).save(tmp_path / "secret.png")
    split_file = root / "image_splits" / "split.rc2.val.json"
    mapping = json.loads(split_file.read_text())
    mapping["dev-0-0-img0"] = "../secret.png"  # record 0: the reference of pair 0
    split_file.write_text(json.dumps(mapping))
    out = tmp_path / "out"
    args = ["cirr", "--root", str(root), "--split", "val", "--out", str(out), "--size", "32", "--no-progress"]
    assert run_command(SHARDS, args) == 0
    gallery = {s["__key__"] for p in (out / "gallery").glob("*.tar") for s in tar_samples(p)}
    assert "dev-0-0-img0" not in gallery and len(gallery) == 3
    (refused,) = pq.read_table(out / "gallery" / "errors.parquet").to_pylist()
    assert (refused["id"], refused["reason"], refused["path"]) == (
        "dev-0-0-img0",
        "bad_path",
        str(split_file),
    )
    assert "record 0" in refused["message"] and "'../secret.png'" in refused["message"]
    errors = pq.read_table(out / "triplets" / "errors.parquet").to_pylist()
    assert [(e["id"], e["reason"]) for e in errors] == [("0", "bad_path")]
    with pytest.raises(DataFormatError, match=r"split.rc2.val.json, record 0, field 'dev-0-0-img0'.*climbs"):
        cirr_task(root, "val")


# -- duplicates are errors, before anything is written ----------------------------------------------
def test_lasco_repeated_triplet_is_an_error_before_anything_is_written(world, tmp_path, capsys):
    ids = world.image_ids
    # one VQA question in two complementary pairs: two triplets of one qid, both kept
    triplets = [*_clean_triplets(world), _triplet(1001, ids[1], ids[5])]
    assert _official(world, tmp_path / "two_pairs", triplets) == 0
    kept = pq.read_table(tmp_path / "two_pairs" / "out" / "triplets" / "index.parquet").to_pylist()
    assert sorted((r["qid"], r["target_image_id"]) for r in kept if r["qid"] == 1001) == [
        (1001, ids[2]),
        (1001, ids[5]),
    ]
    # the same (qid, target) twice, here with another query image: which one is right is unknowable
    triplets = [*_clean_triplets(world), _triplet(1001, ids[4], ids[2])]
    assert _official(world, tmp_path / "lasco", triplets) == 2
    assert f"record 5, field 'qid': duplicate (qid, target image id) (1001, {ids[2]}), first at record 1" in (
        capsys.readouterr().err
    )
    assert _nothing_written(tmp_path / "lasco" / "out")


def test_lasco_image_id_with_two_paths_is_an_error(world, tmp_path, capsys):
    triplets = _clean_triplets(world)
    ids = world.image_ids
    triplets[3]["target-image"][1] = _path(ids[0])  # image ids[4] given the file of ids[0]
    assert _official(world, tmp_path / "lasco", triplets) == 2
    err = capsys.readouterr().err
    # record 4 names the same image with its own file: the two records are named
    assert f"record 4, field 'query-image': image {ids[4]} is '{_path(ids[4])}' here" in err
    assert f"'{_path(ids[0])}' in {tmp_path / 'lasco' / 'lasco_val.json'}, record 3" in err
    assert _nothing_written(tmp_path / "lasco" / "out")


def test_lasco_corpus_lacking_triplet_images_is_recorded(world, tmp_path):
    ids = world.image_ids
    corpus = [{"id": i, "path": f"val/{_path(i)}"} for i in ids[:3]]
    assert _official(world, tmp_path / "lasco", _clean_triplets(world), corpus) == 0
    out = tmp_path / "lasco" / "out"
    kept = pq.read_table(out / "triplets" / "index.parquet").to_pylist()
    assert [(r["query_image_id"], r["target_image_id"]) for r in kept] == [(ids[0], ids[1]), (ids[1], ids[2])]
    errors = pq.read_table(out / "triplets" / "errors.parquet").to_pylist()
    assert [(e["id"], e["reason"]) for e in errors] == [(str(1000 + i), "not_in_corpus") for i in (2, 3, 4)]
    assert json.loads((out / "triplets" / "manifest.json").read_text())["num_errors"] == 3


def test_lasco_corpus_with_a_repeated_id_is_an_error(world, tmp_path, capsys):
    ids = world.image_ids
    corpus = [{"id": i, "path": f"val/{_path(i)}"} for i in ids] + [
        {"id": ids[2], "path": f"val/{_path(ids[3])}"}
    ]
    assert _official(world, tmp_path / "lasco", _clean_triplets(world), corpus) == 2
    assert "record 6, field 'id': duplicate image id" in capsys.readouterr().err
    assert _nothing_written(tmp_path / "lasco" / "out")
    # the train corpus form {"<id>": path}: json would keep the last of two equal keys
    from coir.datasets.lasco_files import read_lasco_corpus

    train_corpus = tmp_path / "lasco_train_corpus.json"
    train_corpus.write_text('{"42": "train2014/a.jpg", "7": "train2014/b.jpg", "42": "train2014/c.jpg"}')
    with pytest.raises(DataFormatError, match="key '42' appears twice"):
        read_lasco_corpus(train_corpus)
    train_corpus.write_text('{"42": "train2014/a.jpg", "042": "train2014/c.jpg"}')
    with pytest.raises(DataFormatError, match="record 1: duplicate image id 42"):
        read_lasco_corpus(train_corpus)


def test_vqa_repeated_question_id_with_another_answer_is_an_error(world, tmp_path, capsys):
    vqa = tmp_path / "vqa"
    shutil.copytree(world.vqa, vqa)
    paths = vqa_paths(vqa, "val2014")
    annotations = json.loads(paths.annotations.read_text())
    copy = dict(annotations["annotations"][4], multiple_choice_answer="purple")
    annotations["annotations"].append(copy)
    paths.annotations.write_text(json.dumps(annotations))
    out = tmp_path / "out"
    args = [
        "--vqa",
        str(vqa),
        "--coco",
        str(world.coco),
        "--out",
        str(out),
        "--split",
        "val",
        "--no-progress",
    ]
    assert run_command(LASCO, args) == 2
    expected = f"{paths.annotations}, record {len(annotations['annotations']) - 1}, field 'question_id'"
    assert expected in capsys.readouterr().err
    assert _nothing_written(out)


def test_vqa_annotation_about_another_image_is_recorded(world):
    from coir.datasets.lasco.config import LascoFilters
    from coir.datasets.lasco.construct import construct_triplets
    from coir.datasets.lasco.rephrase import make_rephraser
    from coir.datasets.vqa import read_complementary_pairs, read_vqa_annotations, read_vqa_questions

    paths = vqa_paths(world.vqa, "val2014")
    questions, pairs = (
        read_vqa_questions(paths.questions),
        read_complementary_pairs(paths.complementary_pairs),
    )
    annotations = read_vqa_annotations(paths.annotations)
    filters = LascoFilters(min_agreement=0, drop_same_answer=False)
    clean = construct_triplets(questions, annotations, pairs, make_rephraser("rule"), filters)
    q1, q2 = pairs[0]
    moved = [a if a.question_id != q1 else replace(a, image_id=5) for a in annotations]
    sources = {"questions": str(paths.questions), "annotations": str(paths.annotations)}
    broken = construct_triplets(questions, moved, pairs, make_rephraser("rule"), filters, sources)
    mismatch = [e for e in broken.errors if e["reason"] == "image_mismatch"]
    assert [(e["kind"], e["id"]) for e in mismatch] == [("question", str(q1)), ("pair", f"{q1}-{q2}")]
    assert "is about image 5" in mismatch[0]["message"] and str(paths.annotations) in mismatch[0]["message"]
    # only that pair's two triplets are gone
    assert {t.key for t in clean.triplets} - {t.key for t in broken.triplets} == {f"{q1}_{q2}", f"{q2}_{q1}"}
    assert len(broken.triplets) == len(clean.triplets) - 2 and broken.report["skipped_image_mismatch"] == 1


@pytest.mark.parametrize("case", ["pairid", "split_name", "shard_key"])
def test_cirr_repeats_are_errors_before_anything_is_written(tmp_path, capsys, case):
    root = make_cirr(tmp_path / "cirr", "val", n=3)
    captions = root / "captions" / "cap.rc2.val.json"
    split_file = root / "image_splits" / "split.rc2.val.json"
    if case == "pairid":
        rows = json.loads(captions.read_text())
        rows.append(dict(rows[0], caption="another caption"))
        captions.write_text(json.dumps(rows))
        expected = "record 3, field 'pairid': duplicate pairid 0, first at record 0"
    elif case == "split_name":  # json keeps the last of two equal keys
        text = split_file.read_text()
        split_file.write_text(text[:-1] + ', "dev-0-0-img0": "./dev/dev-1-0-img1.png"}')
        expected = "key 'dev-0-0-img0' appears twice"
    else:  # "dev-a.png" and "dev-a_png" would be two tar members of one name
        mapping = json.loads(split_file.read_text())
        mapping.update({"dev-a.png": "./dev/dev-0-0-img0.png", "dev-a_png": "./dev/dev-1-0-img1.png"})
        split_file.write_text(json.dumps(mapping))
        expected = "share the shard key 'dev-a_png'"
    out = tmp_path / "out"
    args = ["cirr", "--root", str(root), "--split", "val", "--out", str(out), "--no-progress"]
    assert run_command(SHARDS, args) == 2
    assert expected in capsys.readouterr().err
    assert _nothing_written(out)


def test_fashioniq_asin_listed_twice_is_an_error_at_build_and_at_evaluation(tmp_path, capsys):
    from coir.eval.benchmarks.fashioniq import fashioniq_tasks

    root = make_fashioniq(tmp_path / "fiq", "val", n=3)
    split_file = root / "image_splits" / "split.shirt.val.json"
    asins = json.loads(split_file.read_text())
    split_file.write_text(json.dumps([*asins, asins[1]]))  # scored twice in every shirt ranking
    out = tmp_path / "out"
    args = ["fashioniq", "--root", str(root), "--split", "val", "--out", str(out), "--no-progress"]
    assert run_command(SHARDS, args) == 2
    assert (
        f"{split_file}, record 4: duplicate asin '{asins[1]}', first at record 1" in capsys.readouterr().err
    )
    assert _nothing_written(out)
    with pytest.raises(DataFormatError, match="duplicate asin"):
        fashioniq_tasks(root, "val")


@pytest.mark.parametrize("where", ["split", "captions"])
def test_fashioniq_asins_that_leave_the_image_folder_are_errors_at_build_and_at_evaluation(
    tmp_path, capsys, where
):
    from coir.eval.benchmarks.fashioniq import fashioniq_tasks

    root = make_fashioniq(tmp_path / "fiq", "val", n=3)
    Image.new("RGB", (8, 8), (1, 2, 3)).save(tmp_path / "fiq" / "secret.jpg")
    if where == "split":
        changed = root / "image_splits" / "split.dress.val.json"
        asins = json.loads(changed.read_text())
        changed.write_text(json.dumps([*asins[:2], "../secret", *asins[2:]]))
        expected = f"{changed}, record 2: asin '../secret': its image path climbs above its root"
    else:
        changed = root / "captions" / "cap.toptee.val.json"
        rows = json.loads(changed.read_text())
        rows[1]["candidate"] = "/etc/passwd"
        changed.write_text(json.dumps(rows))
        expected = f"{changed}, record 1, field 'candidate': asin '/etc/passwd': its image path is an"
    out = tmp_path / "out"
    args = ["fashioniq", "--root", str(root), "--split", "val", "--out", str(out), "--no-progress"]
    assert run_command(SHARDS, args) == 2
    assert expected in capsys.readouterr().err
    assert _nothing_written(out)
    with pytest.raises(DataFormatError, match="its image path"):
        fashioniq_tasks(root, "val")


def test_fashion200k_label_paths_outside_the_root_are_errors(tmp_path):
    from coir.datasets.fashion200k import read_label_file

    labels = tmp_path / "dress_test_detect_all.txt"
    for bad, why in (("../../x.jpg", "climbs above its root"), ("/etc/passwd", "is an absolute path")):
        labels.write_text(f"women/dresses/a/1.jpeg\t0.9\tred dress\n{bad}\t0.8\tblue dress\n")
        with pytest.raises(DataFormatError, match=rf"line 2, field 'path': image path '{bad}' {why}"):
            read_label_file(labels, "dress")


# -- evaluation -------------------------------------------------------------------------------------
def _lasco_eval_world(tmp_path: Path) -> tuple[Path, Path, list[int]]:
    coco = tmp_path / "coco"
    ids = [42, 73, 74, 133, 136, 140]
    for i, image_id in enumerate(ids):
        _jpeg(coco_image_path(coco, "val2014", image_id), (40 * i, 255 - 40 * i, (97 * i) % 256))
    lasco = tmp_path / "lasco"
    lasco.mkdir()
    (lasco / "lasco_val_corpus.json").write_text(
        json.dumps([{"id": i, "path": f"val/{_path(i)}"} for i in ids])
    )
    (lasco / "lasco_val.json").write_text(
        json.dumps([_triplet(7000 + k, ids[k], ids[k + 1]) for k in range(5)])
    )
    return lasco, coco, ids


@pytest.mark.parametrize("case", ["gallery_entry", "qid", "outside"])
def test_lasco_evaluation_refuses_repeats_and_outside_paths_before_writing(tmp_path, case):
    from test_eval_world import reference_colour_model

    from coir.eval.api import evaluate
    from coir.eval.config import EvalConfig

    lasco, coco, ids = _lasco_eval_world(tmp_path)
    config = EvalConfig(
        benchmark="lasco", data_root=str(lasco), image_root=str(coco), out=str(tmp_path / "out")
    )
    assert evaluate(reference_colour_model(), config).fragment["lasco/val"]["colour"]["queries"] == 5
    shutil.rmtree(tmp_path / "out")
    corpus_file, triplets_file = lasco / "lasco_val_corpus.json", lasco / "lasco_val.json"
    corpus, triplets = json.loads(corpus_file.read_text()), json.loads(triplets_file.read_text())
    if case == "gallery_entry":
        corpus_file.write_text(json.dumps(corpus + [corpus[2]]))
        expected = r"lasco_val_corpus.json, record 6, field 'id': duplicate image id 74"
    elif case == "qid":
        triplets_file.write_text(json.dumps(triplets + [_triplet(7001, ids[5], ids[2])]))
        expected = r"lasco_val.json, record 5, field 'qid': duplicate \(qid, target image id\) \(7001, 74\)"
    else:
        triplets[2]["query-image"][1] = "../../etc/passwd"
        triplets_file.write_text(json.dumps(triplets))
        expected = r"lasco_val.json, record 2, field 'query-image': path '../../etc/passwd' climbs"
    with pytest.raises(DataFormatError, match=expected):
        evaluate(reference_colour_model(), config)
    assert not (tmp_path / "out").exists()


def test_cirr_evaluation_with_a_repeated_pairid_writes_nothing(tmp_path):
    from test_eval_world import reference_colour_model

    from coir.eval.api import evaluate
    from coir.eval.config import EvalConfig

    root = make_cirr(tmp_path / "cirr", "val", n=3)
    captions = root / "captions" / "cap.rc2.val.json"
    rows = json.loads(captions.read_text())
    captions.write_text(json.dumps(rows + [dict(rows[1], caption="again")]))
    config = EvalConfig(benchmark="cirr", data_root=str(root), out=str(tmp_path / "out"), pictures=False)
    with pytest.raises(CoirError, match="duplicate pairid 1"):
        evaluate(reference_colour_model(), config)
    assert not (tmp_path / "out").exists()


def test_a_task_with_a_repeated_gallery_name_or_query_key_is_refused():
    from coir.eval.tasks import Query, Task, check_task

    query = Query("q1", "a", Path("a.png"), "text", "b")
    check_task(Task("x", "val", "x/val", ["a", "b"], [Path("a.png"), Path("b.png")], [query], (1,)))
    with pytest.raises(CoirError, match="x/val: gallery name 'b' appears twice .entries 1 and 2"):
        check_task(Task("x", "val", "x/val", ["a", "b", "b"], [Path("a.png")] * 3, [query], (1,)))
    with pytest.raises(CoirError, match="x/val: query key 'q1' appears twice"):
        check_task(Task("x", "val", "x/val", ["a", "b"], [Path("a.png")] * 2, [query, query], (1,)))
