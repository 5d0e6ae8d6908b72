"""MIT-States, the TIRG protocol (google/tirg test_retrieval.py): one task "mit_states/test".

Gallery = every test image (the 49 test nouns' folders; coir.datasets.mit_states). Queries = each
test image with each other adjective of its noun, the text the target adjective (or, with
`options.mit_states.text=adjective_noun`, "adjective noun" as ComposeAE). The query's own image is
removed from its ranking. A retrieved image is a hit when its "adjective noun" equals the target's,
so a query's target rank is the rank of the first image with that label (the task's gallery labels;
the query's named target is the first image of the label, any of them answers alike). Metrics R@1,
R@5, R@10, R@50 (the reference also prints R@100 and the adjective-only and noun-only recalls);
model selection reads R@1, the figure the papers lead with. The split is "test".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from coir.common.errors import ConfigError
from coir.datasets.mit_states import TEXT_FORMS
from coir.eval.benchmarks.base import Benchmark, register
from coir.eval.config import option
from coir.eval.tasks import Query, Task

if TYPE_CHECKING:
    from coir.eval.config import EvalConfig

KS = (1, 5, 10, 50)
SPLITS = ("test",)


@dataclass
class MitStatesOptions:
    text: str = option(
        "adjective",
        'MIT-States query text: the target adjective (TIRG) or "adjective noun" (ComposeAE)',
        choices=TEXT_FORMS,
    )


def mit_states_task(root: str | Path, image_root: str | Path | None = None, text: str = "adjective") -> Task:
    from coir.datasets.mit_states import build_test_queries, label_images, query_text, read_mit_states_images

    gallery = read_mit_states_images(root, "test")
    first_of = {label: indices[0] for label, indices in label_images(gallery).items()}
    images = Path(image_root or root)
    queries = []
    for i, q in enumerate(build_test_queries(gallery)):
        reference = gallery[q.reference].path
        queries.append(
            Query(
                key=str(i),
                reference=reference,
                reference_path=images / reference,
                text=query_text(q.adjective, q.noun, text),
                target=gallery[first_of[q.target_label]].path,
                exclude=(reference,),
            )
        )
    return Task(
        "mit_states",
        "test",
        "mit_states/test",
        [g.path for g in gallery],
        [images / g.path for g in gallery],
        queries,
        KS,
        gallery_labels=[g.label for g in gallery],
    )


@register
class MitStates(Benchmark):
    name = "mit_states"
    splits = SPLITS
    Options = MitStatesOptions

    def check(self, config: EvalConfig) -> None:
        super().check(config)
        text = self.options(config).text
        if text not in TEXT_FORMS:
            raise ConfigError(
                f"key 'options.mit_states.text': must be one of {', '.join(TEXT_FORMS)}, got {text!r}"
            )

    def tasks(self, config: EvalConfig) -> list[Task]:
        options: MitStatesOptions = self.options(config)
        return [mit_states_task(str(config.data_root), config.image_root, options.text)]

    def main_measure(self, metrics: Mapping[str, float]) -> float:
        return metrics["R@1"]
