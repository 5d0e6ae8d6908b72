"""FashionIQ: one task per category ("fashioniq-<category>/<split>"), gallery = that category's split
images; the two relative captions joined as CLIP4Cir does. Metrics per category: R@10, R@50 and
their mean "avg"; the headline row "fashioniq/<split>" is the unweighted mean over the categories
(its "queries" the sum), and model selection reads its (R@10 + R@50) / 2.

Options (config `options.fashioniq.<key>`, or the flags of the same names; each row of results.json
records the caption template, the caption orders and whether the reference is removed):
    categories       the categories evaluated (default dress, shirt, toptee)
    caption_template how the two captions are joined (default "{c1} and {c2}")
    caption_orders   given: one query per triplet, captions as given (the CLIP4Cir protocol);
                     both: two queries per triplet, captions (c1, c2) then (c2, c1), recalls over all
                     of them (the ARTEMIS protocol). The reversed query's key is "<index>-reversed".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from coir.common.errors import ConfigError
from coir.datasets.fashioniq import FASHIONIQ_SPLITS, FASHIONIQ_TEMPLATE, join_fashioniq_captions
from coir.datasets.records import FASHIONIQ_CATEGORIES
from coir.eval.benchmarks.base import Benchmark, register
from coir.eval.config import option
from coir.eval.metrics import mean_metrics, recall_with_average
from coir.eval.tasks import Query, Task

if TYPE_CHECKING:
    from coir.eval.config import EvalConfig
    from coir.eval.ranking import Ranking

KS = (10, 50)
CAPTION_ORDERS = ("given", "both")


@dataclass
class FashionIQOptions:
    categories: list[str] = option(
        list(FASHIONIQ_CATEGORIES), "FashionIQ categories (default dress,shirt,toptee)"
    )
    caption_template: str = option(
        FASHIONIQ_TEMPLATE, 'how the two captions are joined (default "{c1} and {c2}")'
    )
    caption_orders: str = option(
        "given",
        "given: one query per triplet; both: also with the captions reversed, as ARTEMIS (default given)",
        choices=CAPTION_ORDERS,
    )


def fashioniq_tasks(
    root: str | Path,
    split: str,
    image_root: str | Path | None = None,
    categories: Sequence[str] = FASHIONIQ_CATEGORIES,
    template: str = FASHIONIQ_TEMPLATE,
    mask_reference: bool = False,
    caption_orders: str = "given",
) -> list[Task]:
    """One task per category; gallery = that category's split images."""
    from coir.datasets.fashioniq import (
        fashioniq_image_path,
        read_fashioniq_image_split,
        read_fashioniq_triplets,
    )

    def image_path(asin: str) -> Path:
        return Path(image_root) / f"{asin}.jpg" if image_root else fashioniq_image_path(root, asin)

    protocol = {
        "caption_template": template,
        "caption_orders": caption_orders,
        "reference": "removed" if mask_reference else "kept",
    }
    tasks = []
    for category in categories:
        names = read_fashioniq_image_split(root, category, split)
        queries = []
        for i, t in enumerate(read_fashioniq_triplets(root, category, split)):
            orders = [(str(i), t.captions)]
            if caption_orders == "both":
                orders.append((f"{i}-reversed", t.captions[::-1]))
            queries += [
                Query(
                    key=key,
                    reference=t.candidate,
                    reference_path=image_path(t.candidate),
                    text=join_fashioniq_captions(captions, template),
                    target=t.target,
                    exclude=(t.candidate,) if mask_reference else (),
                )
                for key, captions in orders
            ]
        paths = [image_path(n) for n in names]
        name = f"fashioniq-{category}/{split}"
        tasks.append(
            Task("fashioniq", split, name, names, paths, queries, KS, part=category, protocol=protocol)
        )
    return tasks


@register
class FashionIQ(Benchmark):
    name = "fashioniq"
    splits = FASHIONIQ_SPLITS
    Options = FashionIQOptions
    report_metrics = tuple(f"R@{k}" for k in KS)

    def check(self, config: EvalConfig) -> None:
        super().check(config)
        options: FashionIQOptions = self.options(config)
        key = "options.fashioniq"
        if not options.categories:
            raise ConfigError(f"key '{key}.categories': give at least one category")
        for category in options.categories:
            if category not in FASHIONIQ_CATEGORIES:
                raise ConfigError(
                    f"key '{key}.categories': FashionIQ category must be one of "
                    f"{', '.join(FASHIONIQ_CATEGORIES)}: {category!r}"
                )
        if len(set(options.categories)) != len(options.categories):
            raise ConfigError(f"key '{key}.categories': a category is listed twice: {options.categories}")
        if options.caption_orders not in CAPTION_ORDERS:
            raise ConfigError(
                f"key '{key}.caption_orders': must be one of {', '.join(CAPTION_ORDERS)}, "
                f"got {options.caption_orders!r}"
            )
        try:
            options.caption_template.format(c1="", c2="")
        except (KeyError, IndexError, ValueError) as error:
            raise ConfigError(
                f"key '{key}.caption_template': fields other than {{c1}} and {{c2}} in "
                f"{options.caption_template!r} ({error!r})"
            ) from error

    def tasks(self, config: EvalConfig) -> list[Task]:
        options: FashionIQOptions = self.options(config)
        return fashioniq_tasks(
            str(config.data_root),
            config.split,
            config.image_root,
            options.categories,
            options.caption_template,
            config.mask_reference,
            options.caption_orders,
        )

    def metrics(self, task: Task, ranking: Ranking) -> dict[str, float]:
        return recall_with_average(ranking.target_rank, task.ks)

    def summary(self, per_task: Sequence[Mapping[str, float | str]]) -> dict[str, float | str] | None:
        """The mean over the categories, with the protocol settings they share; none on a split
        without targets (test)."""
        if not per_task or not all("avg" in m for m in per_task):
            return None
        mean: dict[str, float | str] = {k: v for k, v in mean_metrics(per_task).items() if k != "queries"}
        mean["queries"] = sum(m["queries"] for m in per_task)
        shared = {k: v for k, v in per_task[0].items() if isinstance(v, str)}
        return mean | {k: v for k, v in shared.items() if all(m.get(k) == v for m in per_task)}

    def main_measure(self, metrics: Mapping[str, float]) -> float:
        return (metrics["R@10"] + metrics["R@50"]) / 2

    def truth_file(self, task: Task) -> str:
        return f"fashioniq_redundancy_{task.part}_{task.split}.json"
