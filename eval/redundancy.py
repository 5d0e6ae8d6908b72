"""Modality redundancy, as the LaSCo paper analyses it: which queries one modality alone solves.

The full model, an image-only and a text-only model rank the same queries. At a cut-off K a query
is "solved" by a model when its target is in that model's top K. Per query, at each K:
    "image"  the image-only model solves it, the text-only does not  (the text is redundant)
    "text"   the text-only model solves it, the image-only does not  (the image is redundant)
    "either" both single-modality models solve it
    "both"   neither does: the query needs both modalities
The labels "both" / "image" / "text" match the synthetic world's truth files
(W/truth/<file>.json = {query key: label}, the file named by the benchmark); "either" agrees with
a truth label "image" or "text".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from coir.common.json_io import load_json

LABELS = ("both", "image", "text", "either")
COMPATIBLE = {"both": {"both"}, "image": {"image", "either"}, "text": {"text", "either"}}


def solved(target_rank: np.ndarray, k: int) -> np.ndarray:
    return (target_rank >= 0) & (target_rank < k)


def labels_at(image_rank: np.ndarray, text_rank: np.ndarray, k: int) -> list[str]:
    by_image, by_text = solved(image_rank, k), solved(text_rank, k)
    out = np.where(
        by_image & by_text, "either", np.where(by_image, "image", np.where(by_text, "text", "both"))
    )
    return out.tolist()


def redundancy_summary(
    full_rank: np.ndarray, image_rank: np.ndarray, text_rank: np.ndarray, ks: Sequence[int] = (1, 10)
) -> dict[str, Any]:
    """Per K: the share (%) each model solves, and the share of each label."""
    n = len(full_rank)
    out: dict[str, Any] = {"queries": n}
    for k in ks:
        labels = labels_at(image_rank, text_rank, k)
        full = solved(full_rank, k)
        row = {
            "full": _pct(full.sum(), n),
            "image-only": _pct(solved(image_rank, k).sum(), n),
            "text-only": _pct(solved(text_rank, k).sum(), n),
            "single-modality": _pct(sum(x != "both" for x in labels), n),
            "composed-only": _pct(
                sum(f and x == "both" for f, x in zip(full.tolist(), labels, strict=True)), n
            ),
        }
        row |= {f"label:{label}": _pct(sum(x == label for x in labels), n) for label in LABELS}
        out[f"@{k}"] = row
    return out


def _pct(count: int, n: int) -> float:
    return float(count) / n * 100.0 if n else float("nan")


def truth_path(roots: Sequence[str | Path | None], name: str) -> Path | None:
    """The synthetic world's truth file `name` (a benchmark's truth_file), when a data or image root
    sits inside a world (W/cirr, W/fashioniq, W/coco): W/truth/<name>."""
    for root in roots:
        if root is None:
            continue
        truth = Path(root).resolve().parent / "truth" / name
        if truth.is_file():
            return truth
    return None


def compare_with_truth(
    keys: Sequence[str], predicted: Sequence[str], truth: Mapping[str, str]
) -> dict[str, Any]:
    """Agreement of predicted labels with truth labels on the queries both know, and the
    redundant share (labels other than "both") each side finds."""
    pairs = [(p, truth[k]) for k, p in zip(keys, predicted, strict=True) if k in truth]
    n = len(pairs)
    if not n:
        return {"matched": 0}
    agree = sum(p in COMPATIBLE.get(t, {t}) for p, t in pairs)
    confusion: dict[str, dict[str, int]] = {}
    for p, t in pairs:
        confusion.setdefault(t, {}).setdefault(p, 0)
        confusion[t][p] += 1
    return {
        "matched": n,
        "agreement": agree / n * 100.0,
        "redundant_share_truth": sum(t != "both" for _, t in pairs) / n * 100.0,
        "redundant_share_found": sum(p != "both" for p, _ in pairs) / n * 100.0,
        "truth_share": {t: sum(x == t for _, x in pairs) / n * 100.0 for t in ("both", "image", "text")},
        "confusion": confusion,
    }


def load_truth(path: str | Path) -> dict[str, str]:
    data = load_json(path, "redundancy truth file")
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def redundancy_markdown(name: str, summary: Mapping[str, Any]) -> str:
    lines = [f"### modality redundancy · {name} ({summary['queries']} queries)", ""]
    ks = [key for key in summary if key.startswith("@")]
    columns = list(summary[ks[0]]) if ks else []
    lines += ["| K | " + " | ".join(columns) + " |", "| --- |" + " ---: |" * len(columns)]
    for key in ks:
        lines.append(f"| {key[1:]} | " + " | ".join(f"{summary[key][c]:.1f}" for c in columns) + " |")
    truth = summary.get("truth")
    if truth and truth.get("matched"):
        share_truth, share_found = truth["redundant_share_truth"], truth["redundant_share_found"]
        lines += [
            "",
            f"truth ({truth['matched']} queries, labels at K={truth['k']}): "
            f"agreement {truth['agreement']:.1f}%, redundant share truth {share_truth:.1f}% "
            f"vs found {share_found:.1f}%",
        ]
    return "\n".join(lines) + "\n"
