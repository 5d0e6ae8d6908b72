"""CIRCO's official metrics: a case worked out by hand, the official formula (tests/circo_fixture.py,
numpy) against `coir eval score` on the REAL val annotations, perfect and empty rankings, and the
reader's refusals."""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import pytest
from circo_fixture import OFFICIAL_ASPECTS, circo_root, official_metrics

from coir.common.errors import DataFormatError
from coir.eval import score_cli
from coir.eval.benchmarks.circo import circo_metrics
from coir.eval.tasks import Query


def _query(key: str, target: str, targets: tuple[str, ...], aspects: tuple[str, ...]) -> Query:
    return Query(key, "ref", Path("ref.jpg"), "text", target, targets=targets, aspects=aspects)


def test_a_case_worked_by_hand():
    queries = [
        _query("0", "A", ("A", "B", "C"), ("negation",)),
        _query("1", "D", ("D",), ("negation", "viewpoint")),
        _query("2", "F", ("F", "G"), ("viewpoint",)),
    ]
    predictions = [
        ["X", "A", "Y", "B", "Z", "W", "C", "V", "U", "T"],  # hits at ranks 2, 4, 7 of 3 ground truths
        ["D", "E", "H", "I", "J", "K", "L", "M", "N", "O"],  # the only ground truth first
        ["P", "Q", "R", "S", "T2", "G", "U2", "V2", "W2", "Z2"],  # G at rank 6; the target F absent
    ]
    # query 0: precisions 1/2 (rank 2), 2/4 (rank 4), 3/7 (rank 7); divided by min(3, k)
    ap0 = {5: (1 / 2 + 2 / 4) / 3, 10: (1 / 2 + 2 / 4 + 3 / 7) / 3}
    ap1 = {5: 1.0, 10: 1.0}
    ap2 = {5: 0.0, 10: (1 / 6) / 2}
    got = circo_metrics(predictions, queries, "hand")
    assert got["mAP@5"] == pytest.approx(100 * (ap0[5] + ap1[5] + ap2[5]) / 3)  # 44.44
    assert got["mAP@10"] == pytest.approx(100 * (10 / 21 + 1 + 1 / 12) / 3)
    assert got["mAP@25"] == got["mAP@50"] == pytest.approx(got["mAP@10"])  # no hit after rank 10
    assert got["R@5"] == got["R@50"] == pytest.approx(200 / 3)  # A at 2, D at 1, F never
    assert got["mAP@10[negation]"] == pytest.approx(100 * (10 / 21 + 1) / 2)
    assert got["mAP@10[viewpoint]"] == pytest.approx(100 * (1 + 1 / 12) / 2)
    assert not any(
        key.startswith("mAP@10[") and "negation" not in key and "viewpoint" not in key for key in got
    )


def test_more_ground_truths_than_k_divide_by_k():
    targets = tuple(f"g{i}" for i in range(12))
    query = _query("0", "g0", targets, ())
    got = circo_metrics([list(targets)], [query], "hand")
    assert got["mAP@5"] == got["mAP@10"] == pytest.approx(100.0)  # 5/5, 10/10
    assert got["mAP@25"] == got["mAP@50"] == pytest.approx(100.0)  # 12 hits / min(12, k)


def test_a_prediction_listed_twice_is_an_error():
    query = _query("7", "A", ("A", "B"), ())
    with pytest.raises(DataFormatError, match="query 7: image A is predicted twice"):
        circo_metrics([["A", "X", "A"]], [query], "file.json")


@pytest.fixture(scope="module")
def root(real_data, tmp_path_factory) -> Path:
    return circo_root(real_data, tmp_path_factory.mktemp("circo"))


def _score(files: list[Path], root: Path, capsys, split: str = "val") -> dict:
    parser = argparse.ArgumentParser()
    score_cli.add_arguments(parser)
    argv = [str(f) for f in files] + ["--benchmark", "circo", "--split", split, "--data-root", str(root)]
    assert score_cli.run(parser.parse_args([*argv, "--json"])) == 0
    return json.loads(capsys.readouterr().out)


def _gallery(root: Path) -> list[int]:
    info = root / "COCO2017_unlabeled" / "annotations" / "image_info_unlabeled2017.json"
    return [im["id"] for im in json.loads(info.read_text())["images"]]


def test_coir_scores_a_predictions_file_as_the_official_formula(root, tmp_path, capsys):
    val = json.loads((root / "annotations" / "val.json").read_text())
    gallery = _gallery(root)
    rng = random.Random(1)
    predictions = {}
    for q in val:  # 50 distinct ids: random ones, with some ground truths put at random places
        chosen = rng.sample(gallery, 50)
        for g in rng.sample(q["gt_img_ids"], rng.randint(0, len(q["gt_img_ids"]))):
            if g not in chosen:
                chosen[rng.randrange(50)] = g
        predictions[str(q["id"])] = chosen
    path = tmp_path / "predictions.json"
    path.write_text(json.dumps(predictions))
    reference = official_metrics(val, predictions)
    got = _score([path], root, capsys)
    assert got["queries"] == 220
    assert set(got) == set(reference) | {"queries"}  # every aspect of the official nine occurs in val
    assert {k.split("[")[1].rstrip("]") for k in got if "[" in k} == set(OFFICIAL_ASPECTS)
    assert 0 < reference["mAP@5"] < reference["mAP@50"] < 1  # a non-trivial file
    for name, value in reference.items():
        assert got[name] / 100 == pytest.approx(value, abs=1e-6), name


def test_perfect_and_empty_rankings_on_the_real_val(root, tmp_path, capsys):
    val = json.loads((root / "annotations" / "val.json").read_text())
    named = {q["reference_img_id"] for q in val} | {g for q in val for g in q["gt_img_ids"]}
    outside = [i for i in _gallery(root) if i not in named][:50]
    perfect, empty = {}, {}
    for q in val:  # the target first, then the other ground truths, then images that answer nothing
        perfect[str(q["id"])] = (q["gt_img_ids"] + outside)[:50]
        empty[str(q["id"])] = outside
    (tmp_path / "perfect.json").write_text(json.dumps(perfect))
    (tmp_path / "empty.json").write_text(json.dumps(empty))
    best = _score([tmp_path / "perfect.json"], root, capsys)
    worst = _score([tmp_path / "empty.json"], root, capsys)
    for k in (5, 10, 25, 50):
        assert best[f"mAP@{k}"] == pytest.approx(100.0) and best[f"R@{k}"] == pytest.approx(100.0)
        assert worst[f"mAP@{k}"] == 0.0 and worst[f"R@{k}"] == 0.0
    assert all(best[k] == pytest.approx(100.0) for k in best if k.startswith("mAP@10["))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda q: q.update(semantic_aspects=["colour"]), "unknown aspect 'colour'"),
        (lambda q: q.update(target_img_id=1), "target_img_id 1 is not among the ground truths"),
        (lambda q: q.update(gt_img_ids=q["gt_img_ids"] + q["gt_img_ids"][:1]), "is listed twice"),
        (lambda q: q.pop("gt_img_ids"), "missing field"),
        (lambda q: q.update(id=0), "query id 0 appears twice"),
    ],
)
def test_the_reader_names_the_record_and_field_of_a_bad_annotation(root, tmp_path, edit, message):
    from coir.datasets.circo import read_circo_queries

    val = json.loads((root / "annotations" / "val.json").read_text())
    edit(val[3])
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "val.json").write_text(json.dumps(val))
    with pytest.raises(DataFormatError, match=message) as error:
        read_circo_queries(tmp_path, "val")
    assert "record 3" in str(error.value) and "val.json" in str(error.value)
