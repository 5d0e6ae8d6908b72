"""CIRR: the official protocol and the evaluation-server files.

Gallery = the split's images (captions/cap.rc2.<split>.json, image_splits/split.rc2.<split>.json);
each query's reference is removed from its ranking (each results row records "reference": "removed").
Metrics: R@1/5/10/50 over the gallery, Rs@1/2/3 within the query's img_set minus the reference, and
"avg" = (R@5 + Rs@1) / 2, the official headline number and the model-selection measure. On splits
with `target_soft` (val, train) also the soft-label recalls softR@k and softRs@k of the dataset
authors' validation code (CIRPLANT, OSCAR_CIRPLANT.eval_test_scoring_step_CIRR): per query, the
highest target_soft score among the first k candidates, floored at 0 (scores are 1.0, 0.5, 0.2 and
-1.0 for "not a match"), averaged.

Server files (test1; written the same way on val), under <out>/submissions/:
    cirr-<split>-recall-<model>.json        {"version": "rc2", "metric": "recall", "<pairid>": [top 50]}
    cirr-<split>-recall_subset-<model>.json {"version": "rc2", "metric": "recall_subset", "<pairid>": [top 3]}
Each file is read back and checked against the split's annotations right after it is written
(coir.eval.cirr_submission; a failure is an error). A gallery of fewer than 51 images (synthetic
worlds) yields shorter lists.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from coir.common.errors import DataFormatError
from coir.common.paths import outside_root
from coir.datasets.cirr import CIRR_SPLITS
from coir.eval.benchmarks.base import Benchmark, register
from coir.eval.metrics import recall_at_k, soft_recall_at_k
from coir.eval.tasks import Query, Task

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from coir.eval.config import EvalConfig
    from coir.eval.ranking import Ranking
    from coir.eval.runner import TaskResult

KS = (1, 5, 10, 50)
SUBSET_KS = (1, 2, 3)
RECALL_K = 50  # names per query in the recall submission file
SUBSET_K = 3  # names per query in the recall_subset file


def cirr_task(root: str | Path, split: str, image_root: str | Path | None = None) -> Task:
    from coir.datasets.cirr import (
        cirr_captions_path,
        cirr_image_path,
        cirr_split_path,
        read_cirr_image_split,
        read_cirr_triplets,
    )

    images = read_cirr_image_split(root, split)
    for index, (name, rel) in enumerate(images.items()):
        reason = outside_root(rel)
        if reason is not None:
            raise DataFormatError(cirr_split_path(root, split), f"path {rel!r} {reason}", index, name)
    triplets = read_cirr_triplets(root, split)
    image_root = Path(image_root or root)
    names = list(images)
    paths = [cirr_image_path(image_root, rel) for rel in images.values()]
    queries = []
    for i, t in enumerate(triplets):
        if t.reference not in images:
            raise DataFormatError(
                cirr_captions_path(root, split),
                "reference image is not in the split's image list",
                i,
                "reference",
            )
        subset = tuple(dict.fromkeys(m for m in t.img_set.members if m != t.reference))
        queries.append(
            Query(
                key=str(t.pairid),
                reference=t.reference,
                reference_path=cirr_image_path(image_root, images[t.reference]),
                text=t.caption,
                target=t.target_hard,
                exclude=(t.reference,),
                subset=subset,
                soft=tuple(t.target_soft.items()),
            )
        )
    protocol = {"reference": "removed"}  # CIRR's evaluation always removes it
    return Task("cirr", split, f"cirr/{split}", names, paths, queries, KS, SUBSET_KS, protocol=protocol)


def cirr_metrics(
    target_rank: np.ndarray,
    subset_rank: np.ndarray,
    ks: tuple[int, ...] = KS,
    subset_ks: tuple[int, ...] = SUBSET_KS,
) -> dict[str, float]:
    """R@k over the gallery minus the reference, Rs@k within the img_set minus the reference, and
    "avg" = (R@5 + Rs@1) / 2, the official headline number."""
    out = recall_at_k(target_rank, ks)
    out.update(recall_at_k(subset_rank, subset_ks, prefix="Rs"))
    out["avg"] = (out["R@5"] + out["Rs@1"]) / 2
    return out


def cirr_soft_metrics(task: Task, ranking: Ranking) -> dict[str, float]:
    """softR@k over the gallery and softRs@k within the img_set (module docstring); {} without labels."""
    if not any(q.soft for q in task.queries):
        return {}
    names = np.asarray(task.gallery_names + [""], dtype=object)  # index -1 (padding) -> ""

    def relevance(order: np.ndarray) -> np.ndarray:
        out = np.zeros(order.shape, dtype=np.float64)
        for i, query in enumerate(task.queries):
            soft = dict(query.soft)
            out[i] = [soft.get(n, 0.0) for n in names[order[i]]]
        return out

    out = soft_recall_at_k(ranking.top_indices, relevance(ranking.top_indices), task.ks)
    out.update(
        soft_recall_at_k(ranking.subset_order, relevance(ranking.subset_order), task.subset_ks, "softRs")
    )
    return out


def cirr_submissions(result: TaskResult) -> tuple[dict[str, Any], dict[str, Any]]:
    """(recall, recall_subset) submission dicts from a CIRR TaskResult."""
    recall: dict[str, Any] = {"version": "rc2", "metric": "recall"}
    subset: dict[str, Any] = {"version": "rc2", "metric": "recall_subset"}
    for i, query in enumerate(result.task.queries):
        if query.key in recall:
            raise DataFormatError(
                f"cirr/{result.task.split}", f"pairid {query.key} appears twice", i, "pairid"
            )
        recall[query.key] = result.top_names(i, RECALL_K)  # fewer only when the gallery is tiny
        subset[query.key] = result.subset_names(i, SUBSET_K)
    return recall, subset


def write_cirr_submissions(result: TaskResult, out_dir: str | Path, model_name: str) -> tuple[Path, Path]:
    """Write both server files, then read each back and check it against the task (DataFormatError)."""
    from coir.common.json_io import write_json_atomic
    from coir.eval.cirr_submission import split_queries, validate_submission

    recall, subset = cirr_submissions(result)
    out = Path(out_dir)
    split = result.task.split
    paths = (
        write_json_atomic(out / f"cirr-{split}-recall-{model_name}.json", recall),
        write_json_atomic(out / f"cirr-{split}-recall_subset-{model_name}.json", subset),
    )
    expected = split_queries(result.task)
    for path, metric in zip(paths, ("recall", "recall_subset"), strict=True):
        validate_submission(path, expected, metric)
        log.info("wrote %s (checked against the %s annotations)", path, split)
    return paths


@register
class CIRR(Benchmark):
    name = "cirr"
    splits = CIRR_SPLITS
    submission_splits = ("test1",)
    report_metrics = (*(f"R@{k}" for k in KS), *(f"Rs@{k}" for k in SUBSET_KS))

    def tasks(self, config: EvalConfig) -> list[Task]:
        return [cirr_task(str(config.data_root), config.split, config.image_root)]

    def metrics(self, task: Task, ranking: Ranking) -> dict[str, float]:
        out = cirr_metrics(ranking.target_rank, ranking.subset_target_rank, task.ks, task.subset_ks)
        return out | cirr_soft_metrics(task, ranking)

    def main_measure(self, metrics: Mapping[str, float]) -> float:
        return (metrics["R@5"] + metrics["Rs@1"]) / 2

    def write_submissions(self, result: TaskResult, out_dir: Path) -> list[Path]:
        return list(write_cirr_submissions(result, out_dir, result.model_name))

    def validate_files(
        self, files: Sequence[str | Path], data_root: str | Path, split: str, metric: str | None = None
    ) -> list[str]:
        from coir.eval.cirr_submission import read_split_queries, validate_submission

        expected = read_split_queries(data_root, split)
        lines = []
        for path in files:
            found, n = validate_submission(path, expected, metric)
            lines.append(f"ok: {path}: {found}, {n} queries of CIRR {split}")
        return lines

    def score_files(self, files: Sequence[str | Path], data_root: str | Path, split: str) -> dict[str, float]:
        """The two files of a split with targets (val, train): hard and soft recalls, as coir's evaluation."""
        from coir.common.errors import ConfigError
        from coir.eval.cirr_submission import ranking_from_files

        task = cirr_task(data_root, split)
        if any(q.target is None for q in task.queries):
            raise ConfigError(f"CIRR {split} has no targets: its files are scored by the server")
        return self.metrics(task, ranking_from_files(task, files)) | {"queries": len(task.queries)}
