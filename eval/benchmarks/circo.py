"""CIRCO (ICCV 2023, github.com/miccunifi/CIRCO): open-domain, several ground truths per query.

Gallery = every image of COCO 2017 unlabeled (image_info_unlabeled2017.json, its order); names are
the image ids as strings. Queries = annotations/<split>.json; the query text is the relative caption
put into a template (below); the reference image is removed from its own ranking unless
`remove_reference` is off.

Metrics (the official src/evaluation.py, exactly; percentages): per query, labels[i] = the i-th
prediction is one of gt_img_ids, precision[i] = cumsum(labels)[i] * labels[i] / (i + 1),
AP@k = sum of precision[:k] / min(|gt_img_ids|, k); mAP@5/10/25/50 = the mean AP@k over the
queries. R@5/10/25/50 count target_img_id only. "mAP@10[<aspect>]": the mean AP@10 over the queries
labelled with each of the nine semantic aspects (an aspect no query has is left out; the official
code gives NaN there). A prediction listed twice for a query is an error. Model selection reads mAP@10.

Protocol options (`options.circo.<key>` or the flags), recorded in every results row:
    query_template     a preset or a template with {caption} and, optionally, {shared_concept}:
                       caption   "{caption}"                            (CoVR)
                       searle    "a photo of $ that {caption}"          (SEARLE; "$" is where a
                                 textual-inversion model puts its pseudo word)
                       magiclens "find {shared_concept} but {caption}"  (MagicLens)
    remove_reference   true (default, as CoVR) or false (SEARLE, CIReVL, MagicLens keep the reference)

Server files (test; written the same way on val), under <out>/submissions/:
    circo-<split>-<model>.json    {"<query id>": [the top 50 gallery ids]}
checked against the split's annotations and gallery right after they are written
(coir.eval.circo_submission). `coir eval score` scores such a file, coir's or another code base's,
through circo_metrics, the function coir's own evaluation uses.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from coir.common.errors import ConfigError, DataFormatError
from coir.datasets.circo import CIRCO_SPLITS, SEMANTIC_ASPECTS
from coir.eval.benchmarks.base import Benchmark, register
from coir.eval.config import option
from coir.eval.metrics import average_precision_at_k
from coir.eval.tasks import Query, Task

if TYPE_CHECKING:
    from coir.eval.config import EvalConfig
    from coir.eval.ranking import Ranking
    from coir.eval.runner import TaskResult

log = logging.getLogger(__name__)

KS = (5, 10, 25, 50)
ASPECT_K = 10
SUBMISSION_K = 50  # gallery ids per query in the server file
QUERY_TEMPLATES = {
    "caption": "{caption}",
    "searle": "a photo of $ that {caption}",
    "magiclens": "find {shared_concept} but {caption}",
}
TEMPLATE_FIELDS = ("caption", "shared_concept")


@dataclass
class CIRCOOptions:
    query_template: str = option(
        "caption",
        "CIRCO query text: a preset (caption, searle, magiclens) or a template with {caption} and "
        "{shared_concept} (default caption)",
    )
    remove_reference: bool = option(
        True, "remove each CIRCO query's reference image from its ranking (CoVR; SEARLE, MagicLens keep it)"
    )


def resolve_template(value: str, key: str = "options.circo.query_template") -> str:
    """A preset's template, or `value` itself when it is a template of the known fields with {caption}."""
    if value in QUERY_TEMPLATES:
        return QUERY_TEMPLATES[value]
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    except ValueError as error:
        raise ConfigError(f"key '{key}': not a template: {value!r} ({error})") from None
    unknown = sorted(fields - set(TEMPLATE_FIELDS))
    if unknown or "caption" not in fields:
        raise ConfigError(
            f"key '{key}': a preset ({', '.join(QUERY_TEMPLATES)}) or a template with {{caption}} "
            f"and optionally {{shared_concept}}, got {value!r}"
            + (f" (unknown field {{{unknown[0]}}})" if unknown else "")
        )
    return value


def circo_task(
    root: str | Path,
    split: str,
    image_root: str | Path | None = None,
    template: str = QUERY_TEMPLATES["caption"],
    remove_reference: bool = True,
) -> Task:
    """root holds annotations/ and COCO2017_unlabeled/annotations/; image_root the folder of the
    gallery's file names (default root/COCO2017_unlabeled/unlabeled2017)."""
    from coir.datasets.circo import (
        circo_annotations_path,
        circo_image_dir,
        read_circo_gallery,
        read_circo_queries,
    )

    gallery = read_circo_gallery(root)
    images = Path(image_root) if image_root else circo_image_dir(root)
    names = [str(im.id) for im in gallery]
    paths = [images / im.file_name for im in gallery]
    path_of = dict(zip(names, paths, strict=True))
    queries = []
    for i, q in enumerate(read_circo_queries(root, split)):
        reference = str(q.reference_img_id)
        if reference not in path_of:
            raise DataFormatError(
                circo_annotations_path(root, split),
                f"reference image {reference} is not in the gallery's image-info file",
                i,
                "reference_img_id",
            )
        queries.append(
            Query(
                key=str(q.id),
                reference=reference,
                reference_path=path_of[reference],
                text=template.format(caption=q.relative_caption, shared_concept=q.shared_concept),
                target=None if q.target_img_id is None else str(q.target_img_id),
                exclude=(reference,) if remove_reference else (),
                targets=tuple(str(g) for g in q.gt_img_ids),
                aspects=q.semantic_aspects,
            )
        )
    protocol = {"query_template": template, "reference": "removed" if remove_reference else "kept"}
    return Task("circo", split, f"circo/{split}", names, paths, queries, KS, protocol=protocol)


def circo_metrics(
    predictions: Sequence[Sequence[str]], queries: Sequence[Query], source: str | Path, ks=KS
) -> dict[str, float]:
    """mAP@k, R@k and mAP@10 per semantic aspect (module docstring) of ranked gallery names, one list
    per query in the order of `queries`. DataFormatError naming `source` and the query when a list
    repeats a name."""
    width = max([max(ks), ASPECT_K, *(len(p) for p in predictions)])
    hits = np.zeros((len(queries), width), dtype=bool)
    target_hits = np.zeros((len(queries), width), dtype=bool)
    for i, (names, query) in enumerate(zip(predictions, queries, strict=True)):
        if len(set(names)) != len(names):
            twice = next(n for n in names if list(names).count(n) > 1)
            raise DataFormatError(source, f"query {query.key}: image {twice} is predicted twice")
        truths = set(query.targets) or {query.target}
        hits[i, : len(names)] = [n in truths for n in names]
        target_hits[i, : len(names)] = [n == query.target for n in names]
    relevant = np.array([len(set(q.targets)) or 1 for q in queries])
    ap = average_precision_at_k(hits, relevant, sorted({*ks, ASPECT_K}))
    out = {f"mAP@{k}": float(ap[k].mean() * 100) for k in ks}
    out |= {f"R@{k}": float(target_hits[:, :k].any(axis=1).mean() * 100) for k in ks}
    for aspect in SEMANTIC_ASPECTS:
        rows = [i for i, q in enumerate(queries) if aspect in q.aspects]
        if rows:
            out[f"mAP@{ASPECT_K}[{aspect}]"] = float(ap[ASPECT_K][rows].mean() * 100)
    return out


def circo_submission(result: TaskResult) -> dict[str, list[int]]:
    """{"<query id>": [top 50 gallery ids]} of a CIRCO TaskResult (fewer on a smaller gallery)."""
    return {
        q.key: [int(n) for n in result.top_names(i, SUBMISSION_K)] for i, q in enumerate(result.task.queries)
    }


def write_circo_submission(result: TaskResult, out_dir: str | Path, model_name: str) -> Path:
    """Write the server file, then read it back and check it against the task (DataFormatError)."""
    from coir.common.json_io import write_json_atomic
    from coir.eval.circo_submission import split_expectation, validate_predictions

    split = result.task.split
    path = write_json_atomic(Path(out_dir) / f"circo-{split}-{model_name}.json", circo_submission(result))
    validate_predictions(path, split_expectation(result.task))
    log.info("wrote %s (checked against the %s annotations and the gallery)", path, split)
    return path


@register
class CIRCO(Benchmark):
    name = "circo"
    splits = CIRCO_SPLITS
    Options = CIRCOOptions
    submission_splits = ("test",)
    report_metrics = tuple(f"mAP@{k}" for k in KS)

    def check(self, config: EvalConfig) -> None:
        super().check(config)
        options: CIRCOOptions = self.options(config)
        resolve_template(options.query_template)
        if config.mask_reference and not options.remove_reference:
            raise ConfigError(
                "key 'mask_reference' and 'options.circo.remove_reference=false' contradict each other"
            )

    def tasks(self, config: EvalConfig) -> list[Task]:
        options: CIRCOOptions = self.options(config)
        template = resolve_template(options.query_template)
        return [
            circo_task(
                str(config.data_root), config.split, config.image_root, template, options.remove_reference
            )
        ]

    def metrics(self, task: Task, ranking: Ranking) -> dict[str, float]:
        names = np.asarray(task.gallery_names, dtype=object)
        predictions = [list(names[row[row >= 0]]) for row in ranking.top_indices]
        return circo_metrics(predictions, task.queries, task.name)

    def main_measure(self, metrics: Mapping[str, float]) -> float:
        return metrics["mAP@10"]

    def write_submissions(self, result: TaskResult, out_dir: Path) -> list[Path]:
        return [write_circo_submission(result, out_dir, result.model_name)]

    def validate_files(
        self, files: Sequence[str | Path], data_root: str | Path, split: str, metric: str | None = None
    ) -> list[str]:
        from coir.eval.circo_submission import LIST_LENGTH, read_split_expectation, validate_predictions

        if metric is not None:
            raise ConfigError("--metric: CIRCO files have one kind only (no metric key)")
        expected = read_split_expectation(data_root, split)
        lines = []
        for path in files:
            n = len(validate_predictions(path, expected))
            lines.append(f"ok: {path}: {n} queries of CIRCO {split}, {LIST_LENGTH} gallery ids each")
        return lines

    def score_files(self, files: Sequence[str | Path], data_root: str | Path, split: str) -> dict[str, float]:
        from coir.eval.circo_submission import score_predictions

        if len(files) != 1:
            raise ConfigError(f"CIRCO: give one predictions file, got {len(files)}")
        metrics, n = score_predictions(files[0], data_root, split)
        return metrics | {"queries": n}
