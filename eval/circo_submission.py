"""Checks of CIRCO prediction files (the evaluation server's format) against a split and its gallery.

The format (github.com/miccunifi/CIRCO, README "Submission Format" and submission_examples/): one JSON
object, `"<query id>": [the top 50 gallery image ids]` for every query of the split. Checked here:

- a JSON object without a repeated key; every query id of the split exactly once and no other key
  (keys are the ids written as decimal integers: "0", "1", …);
- per query: 50 distinct image ids, each an image of the gallery (image_info_unlabeled2017.json).
  Ids may be JSON integers or decimal strings (SEARLE writes strings); both mean the same image.
  A gallery of at most 50 images (synthetic worlds) gives every image, or every image but the
  query's reference when the reference is left out.

The reference image may be among the ids: whether it is removed is a protocol choice (CoVR removes
it, SEARLE and MagicLens keep it), not a format rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coir.common.errors import DataFormatError, MissingInputError
from coir.common.json_io import load_json_unique_keys

LIST_LENGTH = 50


@dataclass(frozen=True)
class SplitExpectation:
    """What a predictions file is checked against: the gallery ids, each query id and its reference."""

    gallery: frozenset[int]
    references: Mapping[int, int]


def split_expectation(task: Any) -> SplitExpectation:
    """From a CIRCO Task (coir.eval.benchmarks.circo.circo_task)."""
    return SplitExpectation(
        frozenset(int(n) for n in task.gallery_names),
        {int(q.key): int(q.reference) for q in task.queries},
    )


def read_split_expectation(data_root: str | Path, split: str) -> SplitExpectation:
    from coir.datasets.circo import read_circo_gallery, read_circo_queries

    gallery = frozenset(im.id for im in read_circo_gallery(data_root))
    return SplitExpectation(gallery, {q.id: q.reference_img_id for q in read_circo_queries(data_root, split)})


def _as_id(value: Any) -> int | None:
    """An image or query id written as a JSON integer or a decimal string; None otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdecimal() and value.isascii() and str(int(value)) == value:
        return int(value)
    return None


def check_predictions(data: Any, expected: SplitExpectation, path: str | Path) -> dict[int, list[int]]:
    """The checked predictions as {query id: [image ids]}; DataFormatError naming the query and the reason."""
    if not isinstance(data, dict):
        raise DataFormatError(path, f"expected a JSON object of query ids, got {type(data).__name__}")
    out: dict[int, list[int]] = {}
    for key, names in data.items():
        query = _as_id(key)
        if query is None or query not in expected.references:
            raise DataFormatError(path, f"{key!r} is not a query id of the split", field=key)
        if query in out:
            raise DataFormatError(path, f"query {query} appears twice", field=key)
        out[query] = _check_ids(names, query, expected, Path(path), key)
    missing = [str(q) for q in expected.references if q not in out]
    if missing:
        shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        raise DataFormatError(
            path, f"{len(missing)} queries of the split are missing: {shown}", field=missing[0]
        )
    return out


def _check_ids(names: Any, query: int, expected: SplitExpectation, path: Path, key: str) -> list[int]:
    def fail(message: str) -> DataFormatError:
        return DataFormatError(path, f"query {query}: {message}", field=key)

    if not isinstance(names, list):
        raise fail(f"expected a list of image ids, got {type(names).__name__}")
    ids = []
    for position, value in enumerate(names):
        image = _as_id(value)
        if image is None:
            raise fail(f"item {position}: {value!r} is not an image id")
        ids.append(image)
    reference = expected.references[query]
    allowed = {min(LIST_LENGTH, len(expected.gallery))}
    if reference not in ids:
        allowed.add(min(LIST_LENGTH, len(expected.gallery) - (reference in expected.gallery)))
    if len(ids) not in allowed:
        raise fail(f"{len(ids)} image ids, expected {' or '.join(map(str, sorted(allowed)))}")
    if len(set(ids)) != len(ids):
        raise fail(f"image {next(i for i in ids if ids.count(i) > 1)} appears twice")
    for image in ids:
        if image not in expected.gallery:
            raise fail(f"image {image} is not in the gallery")
    return ids


def validate_predictions(path: str | Path, expected: SplitExpectation) -> dict[int, list[int]]:
    """Load and check a predictions file."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(path, "CIRCO predictions file")
    return check_predictions(load_json_unique_keys(path, "CIRCO predictions file"), expected, path)


def score_predictions(path: str | Path, data_root: str | Path, split: str) -> tuple[dict[str, float], int]:
    """(metrics, number of queries) of a checked predictions file on a labelled split: the metrics of
    coir's own evaluation (coir.eval.benchmarks.circo.circo_metrics)."""
    from coir.common.errors import ConfigError
    from coir.eval.benchmarks.circo import circo_metrics, circo_task

    task = circo_task(data_root, split)
    if any(q.target is None for q in task.queries):
        raise ConfigError(f"CIRCO {split} has no ground truths here: its files are scored by the server")
    predictions = validate_predictions(path, split_expectation(task))
    ranked: Sequence[list[str]] = [[str(i) for i in predictions[int(q.key)]] for q in task.queries]
    return circo_metrics(ranked, task.queries, path), len(task.queries)
