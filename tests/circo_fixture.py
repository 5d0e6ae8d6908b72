"""CIRCO folders built from the REAL val annotations (no images): the gallery's image-info file holds
every id the annotations name plus random others, so readers, metrics and submission files run at
the real size; and the official evaluation's formula, written here independently with numpy, as
the reference the tests compare coir's numbers with."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

OFFICIAL_ASPECTS = (
    "cardinality",
    "addition",
    "negation",
    "direct_addressing",
    "compare_change",
    "comparative_statement",
    "statement_with_conjunction",
    "spatial_relations_background",
    "viewpoint",
)
TEST_QUERIES = 800


def circo_root(real_data: Path, out: Path, extra_images: int = 3000, seed: int = 0) -> Path:
    """out/annotations/val.json (the real file), out/annotations/test.json (800 queries in the test
    split's format: the val records cycled, ids 0..799, without target_img_id, gt_img_ids and
    semantic_aspects) and out/COCO2017_unlabeled/annotations/image_info_unlabeled2017.json."""
    val = json.loads((real_data / "circo" / "annotations" / "val.json").read_text())
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    (out / "annotations" / "val.json").write_text(json.dumps(val))
    test = [
        {
            "reference_img_id": val[i % len(val)]["reference_img_id"],
            "relative_caption": val[i % len(val)]["relative_caption"],
            "shared_concept": val[i % len(val)]["shared_concept"],
            "id": i,
        }
        for i in range(TEST_QUERIES)
    ]
    (out / "annotations" / "test.json").write_text(json.dumps(test))
    named = {q["reference_img_id"] for q in val} | {g for q in val for g in q["gt_img_ids"]}
    rng = random.Random(seed)
    others = set()
    while len(others) < extra_images:
        candidate = rng.randrange(1, 600_000)
        if candidate not in named:
            others.add(candidate)
    ids = sorted(named | others)
    rng.shuffle(ids)
    info = {"images": [{"id": i, "file_name": f"{i:012d}.jpg", "width": 640, "height": 480} for i in ids]}
    folder = out / "COCO2017_unlabeled" / "annotations"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "image_info_unlabeled2017.json").write_text(json.dumps(info))
    return out


def official_metrics(annotations: list[dict], predictions: dict, ranks=(5, 10, 25, 50)) -> dict[str, float]:
    """The formula of miccunifi/CIRCO src/evaluation.py (compute_metrics), as fractions: per query
    labels = isin(predictions, gt_img_ids), precisions = cumsum(labels) * labels / arange(1, n + 1),
    AP@k = sum(precisions[:k]) / min(len(gt_img_ids), k); Recall@k = sum(predictions[:k] == target);
    semantic mAP@10 per aspect over the queries that carry it. Annotations are found by list index
    = query id, as the official dataset class does."""
    aps: dict[int, list[float]] = {k: [] for k in ranks}
    recalls: dict[int, list[float]] = {k: [] for k in ranks}
    by_aspect: dict[str, list[float]] = {a: [] for a in OFFICIAL_ASPECTS}
    for query_id, predicted in predictions.items():
        annotation = annotations[int(query_id)]
        gts = annotation["gt_img_ids"]
        predicted = np.array(predicted, dtype=int)
        labels = np.isin(predicted, gts)
        precisions = np.cumsum(labels, axis=0) * labels / np.arange(1, labels.shape[0] + 1)
        for k in ranks:
            aps[k].append(float(np.sum(precisions[:k]) / min(len(gts), k)))
            recalls[k].append(float(np.sum((predicted == annotation["target_img_id"])[:k])))
        for aspect in annotation["semantic_aspects"]:
            by_aspect[aspect].append(float(np.sum(precisions[:10]) / min(len(gts), 10)))
    out = {f"mAP@{k}": float(np.mean(aps[k])) for k in ranks}
    out |= {f"R@{k}": float(np.mean(recalls[k])) for k in ranks}
    out |= {f"mAP@10[{a}]": float(np.mean(v)) for a, v in by_aspect.items() if v}
    return out
