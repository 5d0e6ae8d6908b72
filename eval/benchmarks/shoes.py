"""Shoes: the protocol of the ARTEMIS reference (naver/artemis evaluate.py, dataset_shoes.py), which
CMAP's released code (CFM-MSG/Code_CMAP) repeats unchanged.

- Gallery: every image of the split's list (test: eval_im_names.txt, 4,658 images), not only the
  targets; in the list's order (ties rank the earlier image first).
- Queries: the split's triplets (both images in the split's list; coir.datasets.shoes), one per
  entry, the caption as written; key = the entry's index in relative_captions_shoes.json. Triplets
  with an image in the other split are not queries (the reference drops them when it builds
  triplet.val.json; 0 on the published files).
- Each query's reference image is removed from its own ranking, always (the reference sets its score
  to -inf); `mask_reference` does not change that. An entry whose target is its own reference (one in
  the published test split) can then never be found: it counts as a miss, as in the reference, where
  that image ranks last.
- Metrics: R@1, R@10, R@50 over all queries, and "avg", their mean: the reference's validation
  measure (results_func: the mean of the recalls at its recall_k_values [1, 10, 50] for Shoes) and the
  "Avg" column of the papers. Model selection reads it.
- No evaluation server, so no submission files.

Images are searched below the womens_* folders of --image-root (default: the data root).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from coir.datasets.shoes import SHOES_SPLITS, SPLIT_FILES
from coir.eval.benchmarks.base import Benchmark, register
from coir.eval.metrics import recall_with_average
from coir.eval.tasks import Query, Task

if TYPE_CHECKING:
    from coir.eval.config import EvalConfig
    from coir.eval.ranking import Ranking

KS = (1, 10, 50)


def shoes_task(root: str | Path, split: str, image_root: str | Path | None = None) -> Task:
    from coir.datasets.shoes import read_shoes_split, shoes_image_paths

    data = read_shoes_split(root, split)
    paths = shoes_image_paths(image_root or root, data.images, SPLIT_FILES[split])
    queries = [
        Query(
            key=str(t.index),
            reference=t.reference,
            reference_path=paths[t.reference],
            text=t.caption,
            target=t.target,
            exclude=(t.reference,),
        )
        for t in data.triplets
    ]
    return Task(
        "shoes", split, f"shoes/{split}", list(data.images), [paths[n] for n in data.images], queries, KS
    )


@register
class Shoes(Benchmark):
    name = "shoes"
    splits = SHOES_SPLITS

    def tasks(self, config: EvalConfig) -> list[Task]:
        return [shoes_task(str(config.data_root), config.split, config.image_root)]

    def metrics(self, task: Task, ranking: Ranking) -> dict[str, float]:
        return recall_with_average(ranking.target_rank, task.ks)

    def main_measure(self, metrics: Mapping[str, float]) -> float:
        return metrics["avg"]
