"""Retrieval metrics from 0-based target ranks (-1: the target is not rankable, counted as a miss).

All recalls are percentages over every evaluated query, as the official CIRR and FashionIQ
evaluations report them.
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


def cirr_metrics(target_rank: np.ndarray, subset_rank: np.ndarray, ks=(1, 5, 10, 50), subset_ks=(1, 2, 3)):
    """R@k over the gallery minus the reference, Rs@k within the img_set minus the reference, and
    "avg" = (R@5 + Rs@1) / 2, the official headline number."""
    out = recall_at_k(target_rank, ks)
    out.update(recall_at_k(subset_rank, subset_ks, prefix="Rs"))
    out["avg"] = (out["R@5"] + out["Rs@1"]) / 2
    return out


def fashioniq_metrics(target_rank: np.ndarray, ks=(10, 50)) -> dict[str, float]:
    out = recall_at_k(target_rank, ks)
    out["avg"] = float(np.mean([out[f"R@{k}"] for k in ks]))
    return out


def mean_metrics(per_task: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The unweighted mean of each metric over tasks (FashionIQ: over the three categories)."""
    keys = [k for k in per_task[0] if all(k in m for m in per_task)] if per_task else []
    return {k: float(np.mean([m[k] for m in per_task])) for k in keys}


def main_measure(benchmark: str, metrics: Mapping[str, float]) -> float:
    """The number model selection uses: CIRR (R@5+Rs@1)/2, FashionIQ mean of R@10 and R@50, LaSCo R@1."""
    if benchmark == "cirr":
        return (metrics["R@5"] + metrics["Rs@1"]) / 2
    if benchmark == "fashioniq":
        return (metrics["R@10"] + metrics["R@50"]) / 2
    return metrics["R@1"]
