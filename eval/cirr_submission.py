"""Checks of CIRR evaluation-server files against the split's annotations.

The format (github.com/Cuberick-Orion/CIRR, Test-split_server.md and its demo files): one JSON object
with "version": "rc2", "metric": "recall" or "recall_subset", and per query `"<pairid>": [names]`,
the model's top 50 gallery images (recall) or its top 3 of the query's img_set (recall_subset); at
most 5 MB. What is checked here, so a file that passes is one the server can score:

- the version and metric keys; the file's size;
- every pairid of the split exactly once (a duplicate JSON key is an error, not a silent overwrite)
  and no other key;
- recall: 50 distinct gallery names without the query's reference (all the gallery but the
  reference when it holds fewer: synthetic worlds);
- recall_subset: 3 distinct names from the query's img_set members, the reference excluded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coir.common.errors import DataFormatError, MissingInputError
from coir.common.json_io import load_json_unique_keys

VERSION = "rc2"
LIST_LENGTH = {"recall": 50, "recall_subset": 3}  # names per query the server scores
MAX_BYTES = 5_000_000  # the server's upload limit ("Maximum 5MB")


@dataclass(frozen=True)
class SplitQueries:
    """What a submission is checked against: the gallery and, per pairid, (reference, subset candidates)."""

    gallery: frozenset[str]
    queries: Mapping[str, tuple[str, tuple[str, ...]]]


def split_queries(task: Any) -> SplitQueries:
    """From a CIRR Task (coir.eval.benchmarks.cirr.cirr_task): its gallery and queries."""
    gallery = frozenset(task.gallery_names)
    queries = {q.key: (q.reference, tuple(m for m in q.subset if m in gallery)) for q in task.queries}
    return SplitQueries(gallery, queries)


def read_split_queries(data_root: str | Path, split: str) -> SplitQueries:
    from coir.eval.benchmarks.cirr import cirr_task

    return split_queries(cirr_task(data_root, split))


def load_submission(path: str | Path) -> dict[str, Any]:
    """The file's object; DataFormatError on a size over the limit, bad JSON or a repeated key."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(path, "CIRR submission file")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise DataFormatError(path, f"{size} bytes; the CIRR server accepts at most {MAX_BYTES}")
    data = load_json_unique_keys(path, "CIRR submission file")
    if not isinstance(data, dict):
        raise DataFormatError(path, f"expected a JSON object, got {type(data).__name__}")
    return data


def check_submission(
    data: Mapping[str, Any], expected: SplitQueries, path: str | Path, metric: str | None = None
) -> str:
    """Check a submission object; returns its metric. DataFormatError naming the pairid and key."""
    if data.get("version") != VERSION:
        raise DataFormatError(path, f"expected {VERSION!r}, got {data.get('version')!r}", field="version")
    found = data.get("metric")
    if found not in LIST_LENGTH or (metric is not None and found != metric):
        wanted = repr(metric) if metric else " or ".join(map(repr, LIST_LENGTH))
        raise DataFormatError(path, f"expected {wanted}, got {found!r}", field="metric")
    for key in data:
        if key not in ("version", "metric") and key not in expected.queries:
            raise DataFormatError(path, f"pairid {key} is not a query of the split", field=key)
    missing = [key for key in expected.queries if key not in data]
    if missing:
        shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        raise DataFormatError(
            path, f"{len(missing)} pairids of the split are missing: {shown}", field=missing[0]
        )
    for key, (reference, subset) in expected.queries.items():
        _check_names(data[key], key, reference, subset, expected.gallery, found, Path(path))
    return found


def _check_names(
    names: Any,
    key: str,
    reference: str,
    subset: tuple[str, ...],
    gallery: frozenset[str],
    metric: str,
    path: Path,
) -> None:
    def fail(message: str) -> DataFormatError:
        return DataFormatError(path, f"pairid {key}: {message}", field=key)

    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise fail("expected a list of image names")
    available = len(subset) if metric == "recall_subset" else len(gallery) - (reference in gallery)
    length = min(LIST_LENGTH[metric], available)
    if len(names) != length:
        raise fail(f"{len(names)} names, expected {length}")
    if len(set(names)) != len(names):
        raise fail(f"a name appears twice: {sorted({n for n in names if names.count(n) > 1})[0]!r}")
    if reference in names:
        raise fail(f"the reference {reference!r} is among the names")
    for name in names:
        if name not in gallery:
            raise fail(f"{name!r} is not an image of the split's gallery")
        if metric == "recall_subset" and name not in subset:
            raise fail(f"{name!r} is not a member of the query's img_set")


def validate_submission(
    path: str | Path, expected: SplitQueries, metric: str | None = None
) -> tuple[str, int]:
    """Load and check a file; (its metric, its number of queries)."""
    found = check_submission(load_submission(path), expected, path, metric)
    return found, len(expected.queries)


def ranking_from_files(task: Any, files: Sequence[str | Path]) -> Any:
    """The Ranking the two server files of `task`'s split describe (each checked first): top_indices and
    the target's rank from the recall file (-1 beyond its 50 names), subset_order and the subset rank
    from the recall_subset file. DataFormatError unless there is one file of each metric."""
    import numpy as np

    from coir.eval.ranking import Ranking

    expected = split_queries(task)
    by_metric: dict[str, dict[str, Any]] = {}
    for path in files:
        data = load_submission(path)
        metric = check_submission(data, expected, path)
        if metric in by_metric:
            raise DataFormatError(
                path, f"a second {metric!r} file; give one recall and one recall_subset file"
            )
        by_metric[metric] = data
    missing = [m for m in LIST_LENGTH if m not in by_metric]
    if missing:
        raise DataFormatError(files[0], f"no {missing[0]!r} file among {len(files)}: give one of each metric")

    def rows(metric: str) -> tuple[np.ndarray, np.ndarray]:
        width = max(len(by_metric[metric][q.key]) for q in task.queries)
        order = np.full((len(task.queries), width), -1, dtype=np.int64)
        target_rank = np.full(len(task.queries), -1, dtype=np.int64)
        for i, query in enumerate(task.queries):
            names = by_metric[metric][query.key]
            order[i, : len(names)] = [task.index_of(n) for n in names]
            if query.target in names:
                target_rank[i] = names.index(query.target)
        return order, target_rank

    top, target_rank = rows("recall")
    subset, subset_rank = rows("recall_subset")
    return Ranking(top, np.zeros(top.shape, np.float32), target_rank, subset, subset_rank)
