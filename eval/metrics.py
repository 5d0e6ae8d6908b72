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


def mean_metrics(per_task: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The unweighted mean of each metric over tasks (FashionIQ: over the three categories)."""
    keys = [k for k in per_task[0] if all(k in m for m in per_task)] if per_task else []
    return {k: float(np.mean([m[k] for m in per_task])) for k in keys}
