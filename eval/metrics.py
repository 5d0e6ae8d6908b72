"""Retrieval metrics from 0-based target ranks (-1: the target is not rankable, counted as a miss).

All recalls are percentages over every evaluated query, as the official CIRR and FashionIQ
evaluations report them. Each benchmark's metric set is in its module (eval/benchmarks/).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np


def recall_at_k(
    target_rank: Sequence[int] | np.ndarray, ks: Iterable[int], prefix: str = "R"
) -> dict[str, float]:
    """{"R@k": % of queries whose target is ranked within the first k}."""
    ranks = np.asarray(target_rank, dtype=np.int64)
    if ranks.size == 0:
        return {f"{prefix}@{k}": float("nan") for k in ks}
    return {f"{prefix}@{k}": float(((ranks >= 0) & (ranks < k)).mean() * 100.0) for k in ks}


def recall_with_average(target_rank: Sequence[int] | np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    """R@k for each k and "avg", their mean (FashionIQ, Shoes, Fashion200k report it beside the recalls)."""
    out = recall_at_k(target_rank, ks)
    out["avg"] = float(np.mean([out[f"R@{k}"] for k in ks]))
    return out


def mean_metrics(per_task: Sequence[Mapping[str, float | str]]) -> dict[str, float]:
    """The unweighted mean of each metric over tasks (FashionIQ: over the three categories); protocol
    settings (strings) are not averaged."""
    if not per_task:
        return {}
    keys = [k for k in per_task[0] if all(k in m and not isinstance(m[k], str) for m in per_task)]
    return {k: float(np.mean([m[k] for m in per_task])) for k in keys}


def soft_recall_at_k(
    ranked: np.ndarray, relevance: np.ndarray, ks: Iterable[int], prefix: str = "softR"
) -> dict[str, float]:
    """Graded recall (the CIRR val protocol of CIRPLANT, the dataset authors' code): a query scores the
    highest relevance among its first k ranked candidates, floored at 0 (a -1 "not a match" label
    costs nothing, an unlabelled candidate scores 0); the metric is the mean score, as a percentage.

    ranked: [Q, n] candidate ids in ranked order, -1 padded; relevance: [Q, n] the relevance of each
    of those candidates (0 where unlabelled or padded). With n < k every candidate counts.
    """
    ranked = np.asarray(ranked)
    scores = np.where(ranked >= 0, np.asarray(relevance, dtype=np.float64), 0.0)
    if scores.shape[0] == 0:
        return {f"{prefix}@{k}": float("nan") for k in ks}
    if scores.shape[1] == 0:
        return {f"{prefix}@{k}": 0.0 for k in ks}
    best = np.maximum(np.maximum.accumulate(scores, axis=1), 0.0)
    return {f"{prefix}@{k}": float(best[:, min(k, best.shape[1]) - 1].mean() * 100.0) for k in ks}


def average_precision_at_k(
    hits: np.ndarray, relevant: np.ndarray, ks: Iterable[int]
) -> dict[int, np.ndarray]:
    """Per query AP@k as the CIRCO evaluation defines it (miccunifi/CIRCO, src/evaluation.py):
    precision[i] = (hits among the first i+1) * hit[i] / (i+1), the precision at each hit and 0
    elsewhere; AP@k = sum of precision[i] for i < k, divided by min(relevant, k).

    hits: [Q, n] bool, whether the i-th prediction is relevant (a shorter list is padded with False,
    which adds nothing); relevant: [Q] the number of relevant images of each query (>= 1).
    Returns {k: [Q] float64}.
    """
    hits = np.asarray(hits, dtype=bool)
    relevant = np.asarray(relevant, dtype=np.int64)
    precision = np.cumsum(hits, axis=1) * hits / np.arange(1, hits.shape[1] + 1)
    return {k: precision[:, :k].sum(axis=1) / np.minimum(relevant, k) for k in ks}
