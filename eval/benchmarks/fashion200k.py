"""Fashion200k, the TIRG protocol (google/tirg test_retrieval.py): one task "fashion200k/test".

Gallery = every test image (labels/*_test_detect_all.txt, one entry per path); one query per line of
test_queries.txt: the reference image with "replace X with Y" (coir.datasets.fashion200k). The
reference is removed from its own ranking. A retrieved image is a hit when its description equals
the target's, so a query's target rank is the rank of the first image with the target's
description (the task's gallery labels; eval/ranking.py ranks by target group). Metrics R@1, R@10,
R@50 and their mean "avg", the model-selection measure. The split is "test" (`--split test`).
With `--fashion200k-text target_description` (options.fashion200k.fashion200k_text) the query text is
the target's description (ComposeAE's complete text query) instead of "replace X with Y".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from coir.common.errors import ConfigError
from coir.datasets.fashion200k import TEXT_FORMS
from coir.eval.benchmarks.base import Benchmark, register
from coir.eval.config import option
from coir.eval.metrics import recall_with_average
from coir.eval.tasks import Query, Task

if TYPE_CHECKING:
    from coir.eval.config import EvalConfig
    from coir.eval.ranking import Ranking

KS = (1, 10, 50)
SPLITS = ("test",)


@dataclass
class Fashion200kOptions:
    fashion200k_text: str = option(
        "modification",
        'Fashion200k query text: "replace X with Y" (TIRG) or the target\'s description (ComposeAE)',
        choices=TEXT_FORMS,
    )


def fashion200k_task(
    root: str | Path, image_root: str | Path | None = None, text: str = "modification"
) -> Task:
    from coir.datasets.fashion200k import (
        build_test_queries,
        query_text,
        read_fashion200k_images,
        unique_images,
    )

    gallery = unique_images(root, read_fashion200k_images(root, "test"), "test")
    images = Path(image_root or root)
    queries = [
        Query(
            key=str(i),
            reference=q.reference,
            reference_path=images / q.reference,
            text=query_text(q.text, q.target_description, text),
            target=q.target,
            exclude=(q.reference,),
        )
        for i, q in enumerate(build_test_queries(root, gallery))
    ]
    return Task(
        "fashion200k",
        "test",
        "fashion200k/test",
        [g.path for g in gallery],
        [images / g.path for g in gallery],
        queries,
        KS,
        gallery_labels=[g.description for g in gallery],
    )


@register
class Fashion200k(Benchmark):
    name = "fashion200k"
    splits = SPLITS
    Options = Fashion200kOptions

    def check(self, config: EvalConfig) -> None:
        super().check(config)
        text = self.options(config).fashion200k_text
        if text not in TEXT_FORMS:
            raise ConfigError(
                f"key 'options.fashion200k.fashion200k_text': must be one of {', '.join(TEXT_FORMS)}, "
                f"got {text!r}"
            )

    def tasks(self, config: EvalConfig) -> list[Task]:
        options: Fashion200kOptions = self.options(config)
        return [fashion200k_task(str(config.data_root), config.image_root, options.fashion200k_text)]

    def metrics(self, task: Task, ranking: Ranking) -> dict[str, float]:
        return recall_with_average(ranking.target_rank, task.ks)

    def main_measure(self, metrics: Mapping[str, float]) -> float:
        return metrics["avg"]
