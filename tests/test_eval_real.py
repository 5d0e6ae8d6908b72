"""End-to-end evaluation on the REAL CIRR val and FashionIQ val annotation files.

Images are 16x16 solid placeholders written by the test. CIRR runs a tiny random CASE (16 px
images, 8 tokens) end to end; FashionIQ (15,536 gallery images, 6,016 queries) runs the colour
model of test_eval_cache, as it checks the task building, counts and means, not the model.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from coir.datasets.records import FASHIONIQ_CATEGORIES

FASHIONIQ_QUERIES = {"dress": 2017, "shirt": 2038, "toptee": 1961}


def colour(name: str) -> tuple[int, int, int]:
    digest = hashlib.md5(name.encode()).digest()
    return digest[0], digest[1], digest[2]


@pytest.fixture(scope="module")
def cirr_images(real_data, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cirr_images")
    split = json.loads((real_data / "cirr" / "image_splits" / "split.rc2.val.json").read_text())
    for name, relpath in split.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (16, 16), colour(name)).save(path)
    return root


@pytest.fixture(scope="module")
def fashioniq_images(real_data, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fashioniq_images")
    asins: set[str] = set()
    for category in FASHIONIQ_CATEGORIES:
        asins |= set(
            json.loads((real_data / "fashioniq" / "image_splits" / f"split.{category}.val.json").read_text())
        )
    for asin in asins:
        Image.new("RGB", (16, 16), colour(asin)).save(root / f"{asin}.jpg", quality=90)
    return root


@pytest.fixture(scope="module")
def tiny_case(real_data, tmp_path_factory):
    from coir.pipeline.models.blip.config import BlipModelConfig
    from coir.pipeline.models.blip.tokenizer import train_wordpiece
    from coir.pipeline.models.registry import build_model

    captions = [
        c["caption"] for c in json.loads((real_data / "cirr" / "captions" / "cap.rc2.val.json").read_text())
    ]
    tokenizer = train_wordpiece(captions[:1000], tmp_path_factory.mktemp("tok") / "tokenizer", vocab_size=300)
    torch.manual_seed(0)
    return build_model(
        BlipModelConfig(preset="tiny", tokenizer=str(tokenizer), image_size=16, max_length=8)
    ).eval()


@pytest.fixture(scope="module")
def cirr_run(real_data, cirr_images, tiny_case, tmp_path_factory):
    from coir.eval.api import evaluate
    from coir.eval.config import EvalConfig

    out = tmp_path_factory.mktemp("cirr_out")
    (out / "results.json").write_text(json.dumps({"lasco/val": {"other": {"R@1": 5.0}}}))
    config = EvalConfig(
        benchmark="cirr",
        data_root=str(real_data / "cirr"),
        image_root=str(cirr_images),
        out=str(out),
        batch_size=512,
        num_workers=0,
        device="cpu",
    )
    return evaluate(tiny_case, config).fragment, out


def test_cirr_val_end_to_end(cirr_run, real_data):
    fragment, out = cirr_run
    metrics = fragment["cirr/val"]["case"]
    assert metrics["queries"] == 4181
    hard = {"R@1", "R@5", "R@10", "R@50", "Rs@1", "Rs@2", "Rs@3"}
    assert set(metrics) == hard | {f"soft{m}" for m in hard} | {"avg", "queries", "reference"}
    assert metrics["reference"] == "removed"  # the protocol, recorded in the row
    assert metrics["R@1"] <= metrics["R@5"] <= metrics["R@10"] <= metrics["R@50"] <= 100
    assert metrics["Rs@1"] <= metrics["Rs@2"] <= metrics["Rs@3"] <= 100
    assert metrics["avg"] == pytest.approx((metrics["R@5"] + metrics["Rs@1"]) / 2)
    results = json.loads((out / "results.json").read_text())
    assert results["lasco/val"] == {"other": {"R@1": 5.0}}  # merged, not overwritten
    assert results["cirr/val"]["case"]["queries"] == 4181
    assert all(
        isinstance(v, (int, float)) for k, v in results["cirr/val"]["case"].items() if k != "reference"
    )
    assert "### cirr/val" in (out / "results.md").read_text()
    with Image.open(out / "cirr-val-case.png") as picture:
        assert picture.format == "PNG" and picture.width > 500
    page = (out / "cirr-val-case.html").read_text()
    assert page.count("<tr>") == 200 and "<img src=" in page


def test_cirr_submission_on_real_val_captions(cirr_run, real_data):
    fragment, out = cirr_run
    captions = json.loads((real_data / "cirr" / "captions" / "cap.rc2.val.json").read_text())
    gallery = set(json.loads((real_data / "cirr" / "image_splits" / "split.rc2.val.json").read_text()))
    recall = json.loads((out / "submissions" / "cirr-val-recall-case.json").read_text())
    subset = json.loads((out / "submissions" / "cirr-val-recall_subset-case.json").read_text())
    assert recall.pop("version") == "rc2" and recall.pop("metric") == "recall"
    assert subset.pop("version") == "rc2" and subset.pop("metric") == "recall_subset"
    pairids = {str(c["pairid"]) for c in captions}
    assert len(pairids) == len(captions) == 4181
    assert set(recall) == pairids and set(subset) == pairids
    hits = {"R@1": 0, "R@5": 0, "R@10": 0, "R@50": 0, "Rs@1": 0, "Rs@2": 0, "Rs@3": 0}
    for c in captions:
        key, reference = str(c["pairid"]), c["reference"]
        top = recall[key]
        assert len(top) == 50 and len(set(top)) == 50
        assert reference not in top and set(top) <= gallery
        members = set(c["img_set"]["members"]) - {reference}
        assert len(subset[key]) == 3 and len(set(subset[key])) == 3 and set(subset[key]) <= members
        for k in (1, 5, 10, 50):
            hits[f"R@{k}"] += c["target_hard"] in top[:k]
        for k in (1, 2, 3):
            hits[f"Rs@{k}"] += c["target_hard"] in subset[key][:k]
    # the hard-label recalls recomputed from the written files are the reported ones
    metrics = fragment["cirr/val"]["case"]
    for name, count in hits.items():
        assert metrics[name] == pytest.approx(count / 4181 * 100)


def test_fashioniq_val_counts_and_mean(real_data, fashioniq_images):
    from test_eval_cache import ColourModel

    from coir.eval.api import evaluate
    from coir.eval.config import EvalConfig

    config = EvalConfig(
        benchmark="fashioniq",
        data_root=str(real_data / "fashioniq"),
        image_root=str(fashioniq_images),
        batch_size=512,
        num_workers=0,
        device="cpu",
    )
    fragment = evaluate(ColourModel(), config).fragment
    per_category = [fragment[f"fashioniq-{c}/val"]["colour"] for c in FASHIONIQ_CATEGORIES]
    assert [m["queries"] for m in per_category] == [FASHIONIQ_QUERIES[c] for c in FASHIONIQ_CATEGORIES]
    mean = fragment["fashioniq/val"]["colour"]
    assert mean["queries"] == sum(FASHIONIQ_QUERIES.values())
    for metric in ("R@10", "R@50", "avg"):
        assert mean[metric] == pytest.approx(sum(m[metric] for m in per_category) / 3)
    for m in per_category:
        assert m["avg"] == pytest.approx((m["R@10"] + m["R@50"]) / 2)


def test_lasco_task_on_the_real_val_corpus(real_data, tmp_path):
    from coir.eval.benchmarks.lasco import lasco_task

    lasco = tmp_path / "lasco"
    lasco.mkdir()
    (lasco / "lasco_val_corpus.json").write_bytes(
        (real_data / "lasco" / "lasco_val_corpus.json").read_bytes()
    )
    query = {
        "qid": 42001,
        "query-image": [42, "val2014/COCO_val2014_000000000042.jpg"],
        "query-text": "make it blue",
        "target-image": [73, "val2014/COCO_val2014_000000000073.jpg"],
    }
    (lasco / "lasco_val.json").write_text(json.dumps([query]))
    task = lasco_task(lasco, "val", image_root=tmp_path / "coco")
    assert len(task.gallery_names) == 39826 and len(set(task.gallery_names)) == 39826
    assert task.gallery_paths[0] == tmp_path / "coco" / "val2014" / "COCO_val2014_000000000042.jpg"
    assert task.index_of("73") >= 0 and task.queries[0].target == "73"
    assert task.queries[0].reference_path == task.gallery_paths[task.index_of("42")]
