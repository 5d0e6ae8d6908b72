"""CIRR submission files for the official evaluation server (test1; written the same way on val).

recall:        {"version": "rc2", "metric": "recall", "<pairid>": [top-50 gallery names]}
recall_subset: {"version": "rc2", "metric": "recall_subset", "<pairid>": [top-3 img_set names]}
The reference is never among the names: it is removed from the ranking before the top-k. A gallery
of fewer than 51 images (synthetic worlds) yields shorter lists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coir.common.errors import DataFormatError
from coir.common.json_io import write_json_atomic

RECALL_K = 50
SUBSET_K = 3


def cirr_submissions(result: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(recall, recall_subset) submission dicts from a CIRR TaskResult."""
    recall: dict[str, Any] = {"version": "rc2", "metric": "recall"}
    subset: dict[str, Any] = {"version": "rc2", "metric": "recall_subset"}
    for i, query in enumerate(result.task.queries):
        if query.key in recall:
            raise DataFormatError(
                f"cirr/{result.task.split}", f"pairid {query.key} appears twice", i, "pairid"
            )
        recall[query.key] = result.top_names(i, RECALL_K)  # fewer only when the gallery is tiny
        subset[query.key] = result.subset_names(i, SUBSET_K)
    return recall, subset


def write_cirr_submissions(result: Any, out_dir: str | Path, model_name: str) -> tuple[Path, Path]:
    recall, subset = cirr_submissions(result)
    out = Path(out_dir)
    split = result.task.split
    return (
        write_json_atomic(out / f"cirr-{split}-recall-{model_name}.json", recall),
        write_json_atomic(out / f"cirr-{split}-recall_subset-{model_name}.json", subset),
    )
