"""LaSCo: the split's corpus (lasco_<split>_corpus.json) is the gallery, lasco_<split>.json the queries;
R@1/5/10/50; model selection reads R@1. A query is one triplet, keyed "<qid>_<target image id>" (a VQA
question in two complementary pairs gives two triplets of one qid). The redundancy truth of a synthetic
world is the VQA one (LaSCo qids are VQA question ids): W/truth/vqa_redundancy_<split>2014.json.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from coir.common.errors import ConfigError, DataFormatError
from coir.common.paths import outside_root
from coir.datasets.lasco_files import LASCO_SPLITS
from coir.eval.benchmarks.base import Benchmark, register
from coir.eval.tasks import Query, Task

if TYPE_CHECKING:
    from coir.eval.config import EvalConfig

KS = (1, 5, 10, 50)


def lasco_task(
    root: str | Path, split: str, image_root: str | Path | None = None, mask_reference: bool = False
) -> Task:
    """root holds lasco_{split}.json and lasco_{split}_corpus.json; image_root is the COCO root
    (the folder holding val2014/); by default root itself when it has a val2014/ or train2014/."""
    from coir.datasets.lasco_files import (
        corpus_image_relpath,
        lasco_paths,
        read_lasco_corpus,
        read_lasco_triplets,
    )

    triplets_path, corpus_path = lasco_paths(root, split)
    if image_root is None:
        if not any((Path(root) / d).is_dir() for d in ("val2014", "train2014")):
            raise ConfigError("--image-root: LaSCo needs the COCO image root (the folder holding val2014/)")
        image_root = root
    image_root = Path(image_root)

    def image_path(file: Path, index: int, field: str, path_in_file: str) -> Path:
        relpath = corpus_image_relpath(path_in_file)
        reason = outside_root(relpath)
        if reason is not None:
            raise DataFormatError(file, f"path {path_in_file!r} {reason}", index, field)
        return image_root / relpath

    corpus = read_lasco_corpus(corpus_path)
    names = [str(im.id) for im in corpus]
    paths = [image_path(corpus_path, i, "path", im.path) for i, im in enumerate(corpus)]
    queries = [
        Query(
            key=f"{t.qid}_{t.target_image_id}",
            reference=str(t.query_image_id),
            reference_path=image_path(triplets_path, i, "query-image", t.query_image_path),
            text=t.query_text,
            target=str(t.target_image_id),
            exclude=(str(t.query_image_id),) if mask_reference else (),
        )
        for i, t in enumerate(read_lasco_triplets(triplets_path))
    ]
    return Task("lasco", split, f"lasco/{split}", names, paths, queries, KS)


@register
class LaSCo(Benchmark):
    name = "lasco"
    splits = LASCO_SPLITS

    def tasks(self, config: EvalConfig) -> list[Task]:
        return [lasco_task(str(config.data_root), config.split, config.image_root, config.mask_reference)]

    def main_measure(self, metrics: Mapping[str, float]) -> float:
        return metrics["R@1"]

    def truth_file(self, task: Task) -> str:
        return f"vqa_redundancy_{task.split}2014.json"

    def truth_key(self, query: Query) -> str:
        return query.key.partition("_")[0]  # the qid
