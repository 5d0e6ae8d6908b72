"""Build LaSCo shards: construct triplets (or read the published ones), then write the triplet and
gallery shards of one task's range, then (once every task is done) finalize the folder.

    report = build_lasco(config, task_index=i, num_tasks=n)   # any number of times, any order
    report = finalize_build(config.out)                       # once, after all tasks

Output (see notes/conventions.md): <out>/triplets/, <out>/gallery/ (shards, manifest.json,
index.parquet, errors.parquet) and, written by finalize, <out>/lasco_{split}.json and
<out>/lasco_{split}_corpus.json with exactly the triplets and images that made it into the shards.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from coir.common import fields
from coir.common.errors import CoirError, ConfigError, MissingInputError
from coir.datasets.coco import coco_relpath
from coir.datasets.lasco.config import LascoBuildConfig, manifest_config
from coir.datasets.lasco.construct import Construction, Triplet, construct_triplets, require_triplets
from coir.datasets.lasco.official import gallery_sample, official_sets
from coir.datasets.lasco_files import lasco_paths, write_lasco_corpus, write_lasco_triplets
from coir.datasets.records import CorpusImage, LascoTriplet
from coir.datasets.shards.build import build_sets
from coir.datasets.shards.encoded_images import remove_all_scratch
from coir.datasets.shards.images import RESIZE_MODES, ImageEncoder
from coir.datasets.shards.manifest import finalize_folder, read_index, remove_leftover_temps
from coir.datasets.shards.spec import SampleSpec, ShardSet, error_record
from coir.datasets.vqa import read_complementary_pairs, read_vqa_annotations, read_vqa_questions, vqa_paths

TRIPLET_COLUMNS = (
    ("qid", "int64"),
    ("target_qid", "int64"),
    ("query_image_id", "int64"),
    ("query_path", "string"),
    ("target_image_id", "int64"),
    ("target_path", "string"),
    ("text", "string"),
)
GALLERY_COLUMNS = (("image_id", "int64"), ("path", "string"))


def _check(config: LascoBuildConfig) -> None:
    if config.split not in ("train", "val"):
        raise ConfigError(f"split must be train or val, got {config.split!r}")
    if config.images.resize not in RESIZE_MODES:
        modes = ", ".join(RESIZE_MODES)
        raise ConfigError(f"images.resize must be one of {modes}, got {config.images.resize!r}")
    if min(config.shard_size, config.gallery_shard_size, config.images.size) < 1:
        raise ConfigError("shard_size, gallery_shard_size and images.size must be >= 1")
    if not 1 <= config.images.jpeg_quality <= 100:
        raise ConfigError(f"images.jpeg_quality must be in 1..100, got {config.images.jpeg_quality}")
    if not Path(config.coco).is_dir():
        raise MissingInputError(config.coco, "COCO image folder")
    if config.from_official is None and config.vqa is None:
        raise ConfigError("give the VQA folder (--vqa) or a published LaSCo file (--from-official)")
    if config.from_official is None and not Path(config.vqa).is_dir():
        raise MissingInputError(config.vqa, "VQA folder")


def make_rephraser(config: LascoBuildConfig) -> Any:
    """The build config's rephraser section -> coir.datasets.lasco.rephrase.make_rephraser."""
    from coir.datasets.lasco.rephrase import make_rephraser as make

    options = config.rephraser
    if options.kind != "lm":
        return make(options.kind)  # "rule", or an unknown kind that make() reports by name
    if not options.model_dir:
        raise ConfigError("rephraser.model_dir is required with rephraser.kind=lm")
    cache = options.cache_path or str(Path(config.out) / "rephrase_cache.jsonl")
    return make("lm", model_dir=options.model_dir, cache_path=cache, batch_size=options.batch_size)


def construct(config: LascoBuildConfig) -> Construction:
    paths = vqa_paths(config.vqa, f"{config.split}2014")
    questions = read_vqa_questions(paths.questions)
    annotations = read_vqa_annotations(paths.annotations)
    pairs = read_complementary_pairs(paths.complementary_pairs)
    sources = {
        "questions": str(paths.questions),
        "annotations": str(paths.annotations),
        "pairs": str(paths.complementary_pairs),
    }
    construction = construct_triplets(
        questions, annotations, pairs, make_rephraser(config), config.filters, sources
    )
    require_triplets(construction, f"{paths.complementary_pairs} with the filters {config.filters}")
    return construction


def _triplet_sample(t: Triplet, split: str, coco: Path) -> SampleSpec:
    coco_split = f"{split}2014"
    qpath, tpath = coco_relpath(coco_split, t.query_image_id), coco_relpath(coco_split, t.target_image_id)
    meta = {
        "qid": t.qid,
        "target_qid": t.target_qid,
        "query_image": [t.query_image_id, qpath],
        "target_image": [t.target_image_id, tpath],
        "text": t.text,
        "question": t.question,
        "query_answer": t.query_answer,
        "target_answer": t.target_answer,
        "question_type": t.question_type,  # target side's, like text and target_answer
        "answer_type": t.answer_type,
        "query_answers": list(t.query_answers),
        "target_answers": list(t.target_answers),
    }
    row = {
        "qid": t.qid,
        "target_qid": t.target_qid,
        "query_image_id": t.query_image_id,
        "query_path": qpath,
        "target_image_id": t.target_image_id,
        "target_path": tpath,
        "text": t.text,
    }
    return SampleSpec(
        t.key,
        ((fields.QUERY_IMAGE, str(coco / qpath)), (fields.TARGET_IMAGE, str(coco / tpath))),
        t.text,
        meta,
        row,
    )


def plan_lasco(config: LascoBuildConfig) -> list[ShardSet]:
    """The two shard sets of the build (triplets, gallery), identical in every task."""
    _check(config)
    out, coco = Path(config.out), Path(config.coco)
    errors: list[dict[str, str]] = []
    gallery_errors: list[dict[str, str]] = []
    if config.from_official is None:
        construction = construct(config)
        triplets = [_triplet_sample(t, config.split, coco) for t in construction.triplets]
        coco_split = f"{config.split}2014"
        ids = construction.gallery_image_ids
        gallery = [gallery_sample(i, coco_relpath(coco_split, i), coco) for i in ids]
        report, errors = construction.report, construction.errors
        source = "vqa"
    else:
        triplets, gallery, report, errors, gallery_errors = official_sets(config, coco)
        source = "official"
    meta = {
        "dataset": "lasco",
        "split": config.split,
        "source": source,
        "config": manifest_config(config),
        "report": report,
    }
    return [
        ShardSet(out / "triplets", "triplets", triplets, config.shard_size, TRIPLET_COLUMNS, meta, errors),
        ShardSet(
            out / "gallery",
            "gallery",
            gallery,
            config.gallery_shard_size,
            GALLERY_COLUMNS,
            meta,
            gallery_errors,
        ),
    ]


def build_lasco(
    config: LascoBuildConfig, task_index: int = 0, num_tasks: int = 1, progress: bool = True
) -> dict[str, Any]:
    """Write the triplet and gallery shards of task `task_index` of `num_tasks`; skip finished shards.

    Every task plans the whole build (cheap: json only) and writes only its contiguous range of
    shard indices. Returns a report: the construction counts and what this task wrote.
    """
    if not 0 <= task_index < num_tasks:
        raise ConfigError(f"task index must be in [0, {num_tasks}), got {task_index}")
    sets = plan_lasco(config)
    encoder = ImageEncoder(config.images.resize, config.images.size, config.images.jpeg_quality)
    written = build_sets(sets, encoder, task_index, num_tasks, config.workers, config.reuse_images, progress)
    return {"construction": sets[0].meta["report"], "errors_before_sharding": len(sets[0].errors), **written}


def finalize_build(out_dir: str | Path) -> dict[str, Any]:
    """Merge the parts of a fully written build; write manifests, index/errors, official json files.

    Raises CoirError naming the missing shards when some task has not finished.
    """
    out = Path(out_dir)
    triplets = finalize_folder(out / "triplets")
    finalize_folder(out / "gallery")
    remove_all_scratch(out)  # every task is done: a scratch folder left is a killed task's
    split = triplets["split"]
    lasco_json, corpus_json = lasco_paths(out, split)
    remove_leftover_temps(out)
    rows = read_index(out / "triplets").to_pylist()
    if not rows:
        raise CoirError(f"{out}: every triplet was skipped (see {out / 'triplets' / 'errors.parquet'})")
    write_lasco_triplets(
        lasco_json,
        [
            LascoTriplet(
                r["qid"],
                r["query_image_id"],
                r["query_path"],
                r["text"],
                r["target_image_id"],
                r["target_path"],
            )
            for r in rows
        ],
    )
    images = read_index(out / "gallery").to_pylist()
    write_lasco_corpus(corpus_json, [CorpusImage(r["image_id"], r["path"]) for r in images], split)
    return summary(out)


def summary(out_dir: str | Path) -> dict[str, Any]:
    """The build report of a finished folder, from its manifests."""
    out = Path(out_dir)
    result: dict[str, Any] = {}
    for name in ("triplets", "gallery"):
        manifest = json.loads((out / name / "manifest.json").read_bytes())
        result[name] = {
            k: manifest[k] for k in ("num_samples", "num_shards", "num_errors", "errors_by_reason")
        }
        result["construction"] = manifest["report"]
    result["split"] = manifest["split"]
    return result


__all__ = ["build_lasco", "finalize_build", "plan_lasco", "summary", "error_record"]
