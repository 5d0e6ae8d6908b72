"""Run one model on one task: embed the gallery (cached), embed the queries, rank, score.

A model with a frozen image part is run from that part's features, computed once per identity and
image list and cached (coir.eval.features): the CNN does not run again for another checkpoint.

With several ranks each embeds a slice of the gallery (gathered) and a slice of the queries; the
per-query rankings are gathered so every rank returns the full result.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coir.eval.benchmarks import get_benchmark
from coir.eval.config import EvalConfig, eval_device
from coir.eval.encode import embed_gallery, encode_queries, shard_bounds, world
from coir.eval.features import FeatureSource
from coir.eval.ranking import GROUP_BYTES_PER_PAIR, Ranking, chunk_sizes, rank
from coir.eval.tasks import Task
from coir.pipeline.models.base import prompt_text
from coir.pipeline.models.state import State, tree_to

log = logging.getLogger(__name__)

TOP_K = 50  # gallery names kept per query: the CIRR server file's 50, the pictures' top row


@dataclass
class TaskResult:
    task: Task
    model_name: str
    ranking: Ranking
    metrics: dict[str, float | str]  # numbers, and the task's protocol settings (strings)

    def top_names(self, i: int, k: int | None = None) -> list[str]:
        row = self.ranking.top_indices[i]
        row = row[row >= 0] if k is None else row[row >= 0][:k]
        return [self.task.gallery_names[j] for j in row]

    def subset_names(self, i: int, k: int | None = None) -> list[str]:
        row = self.ranking.subset_order[i]
        row = row[row >= 0] if k is None else row[row >= 0][:k]
        return [self.task.gallery_names[j] for j in row]


def task_metrics(task: Task, ranking: Ranking) -> dict[str, float | str]:
    """The benchmark's metrics, or only the query count on a split without targets (test); then the
    task's protocol settings (strings), so every result says how it was obtained."""
    out: dict[str, float | str] = {}
    if any(q.target is not None for q in task.queries):
        out = dict(get_benchmark(task.benchmark).metrics(task, ranking))
    out["queries"] = len(task.queries)
    return out | task.protocol


def _gather_ranking(local: Ranking) -> Ranking:
    import torch.distributed as dist

    _, world_size = world()
    if world_size == 1:
        return local
    parts: list[Any] = [None] * world_size
    dist.all_gather_object(parts, local)

    def cat(field: str) -> np.ndarray:
        arrays = [getattr(p, field) for p in parts]
        if arrays[0].ndim == 2:  # subset widths may differ between ranks
            width = max(a.shape[1] for a in arrays)
            arrays = [np.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=-1) for a in arrays]
        return np.concatenate(arrays)

    return Ranking(
        *(cat(f) for f in ("top_indices", "top_scores", "target_rank", "subset_order", "subset_target_rank"))
    )


def frozen_features(
    model: Any,
    task: Task,
    cache_dir: str | Path | None,
    batch_size: int,
    device: str,
    num_workers: int,
    progress: bool,
) -> FeatureSource | None:
    """For a model with a frozen image part: its features of the gallery and of every query's reference
    (references that are gallery images share its rows), from the cache or computed once. None otherwise."""
    frozen = model.frozen_image_features()
    if frozen is None:
        return None
    features = FeatureSource(model, frozen, cache_dir, batch_size, device, num_workers, progress)
    features.prepare(task.gallery_paths)
    features.prepare([q.reference_path for q in task.queries])
    return features


def task_gallery(
    model: Any,
    task: Task,
    config: EvalConfig,
    fingerprint: str | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> State:
    """The task's gallery embedded by `model` (from the cache when `fingerprint` and `cache_dir` are
    given), to rank several models with one target encoder against (run_task's `gallery`)."""
    model.eval()
    features = frozen_features(
        model, task, cache_dir, config.batch_size, eval_device(config), config.num_workers, progress
    )
    return _embed_gallery(model, task, config, fingerprint, cache_dir, progress, features)


def _embed_gallery(
    model: Any,
    task: Task,
    config: EvalConfig,
    fingerprint: str | None,
    cache_dir: str | Path | None,
    progress: bool,
    features: FeatureSource | None,
) -> State:
    return embed_gallery(
        model,
        task.gallery_paths,
        fingerprint,
        cache_dir,
        config.batch_size,
        eval_device(config),
        config.num_workers,
        progress,
        features,
        config.gallery_part,
    )


def query_prompt(model: Any, task: Task, config: EvalConfig) -> str | None:
    """The prompt the task's captions go into: config.query_prompt, else the model's own for the
    benchmark (None: the captions as they are)."""
    prompt = config.query_prompt or model.query_prompt(task.benchmark)
    if prompt is not None:
        source = "--query-prompt" if config.query_prompt else "the model's own"
        log.info("%s: query text = %r (%s)", task.name, prompt, source)
    return prompt


@torch.no_grad()
def run_task(
    model: Any,
    task: Task,
    config: EvalConfig,
    model_name: str | None = None,
    fingerprint: str | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    k: int = TOP_K,
    gallery: State | None = None,
) -> TaskResult:
    """`config` gives the batch size, device, workers and the memory budget that sizes the ranking's
    query x gallery chunks; `k` how many gallery
    names are kept per query (the target's rank is exact whatever k); `model_name` the result's name
    (default: the model's own); `gallery` the task's gallery state when already embedded by a model
    whose target encoder is this one's (the zero-shot report's baselines share the model's)."""
    batch_size, device, num_workers = config.batch_size, eval_device(config), config.num_workers
    model.eval()
    features = frozen_features(model, task, cache_dir, batch_size, device, num_workers, progress)
    if gallery is None:
        gallery = _embed_gallery(model, task, config, fingerprint, cache_dir, progress, features)
    else:
        gallery = tree_to(gallery, device)
    rank_id, world_size = world()
    start, stop = shard_bounds(len(task.queries), rank_id, world_size)
    queries = task.queries[start:stop]
    prompt = query_prompt(model, task, config)
    query_states = encode_queries(
        model,
        [q.reference_path for q in queries],
        [prompt_text(prompt, q.text) for q in queries],
        batch_size,
        device,
        num_workers,
        progress and rank_id == 0,
        features,
    )
    groups = task.hit_groups(queries)  # hits judged by label (Fashion200k), or None
    query_chunk, gallery_chunk = chunk_sizes(
        len(queries),
        len(task.gallery_paths),
        getattr(model, "score_bytes_per_pair", 0) + (GROUP_BYTES_PER_PAIR if groups else 0),
        int(config.memory_gb * 2**30),
    )
    targets = [task.index_of(q.target) for q in queries]
    missing = sum(t < 0 for t, q in zip(targets, queries, strict=True) if q.target is not None)
    if missing:
        log.warning("%s: %d targets are not in the gallery (counted as misses)", task.name, missing)
    ranking = rank(
        query_states,
        gallery,
        k=k,
        targets=targets,
        exclude=[[i for i in map(task.index_of, q.exclude) if i >= 0] for q in queries],
        subsets=[[i for i in map(task.index_of, q.subset) if i >= 0] for q in queries]
        if task.subset_ks
        else None,
        score_fn=model.score,
        query_chunk=query_chunk,
        gallery_chunk=gallery_chunk,
        groups=groups,
    )
    ranking = _gather_ranking(ranking)
    name = model_name or getattr(model, "name", "") or "model"
    return TaskResult(task, name, ranking, task_metrics(task, ranking))
