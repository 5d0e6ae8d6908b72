"""Benchmark tasks: the gallery and the queries of one evaluation, read from the official files.

A Task is benchmark-neutral (names, image paths, texts, targets, the names removed from a query's
ranking and the subset it is also ranked within), so one runner serves every benchmark; each
benchmark module (eval/benchmarks/) builds its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Query:
    key: str  # unique within a task: CIRR pairid, LaSCo qid, FashionIQ "<index>"
    reference: str
    reference_path: Path
    text: str
    target: str | None  # None on test splits
    exclude: tuple[str, ...] = ()  # gallery names removed from this query's ranking
    subset: tuple[str, ...] = ()  # CIRR: img_set members minus the reference


@dataclass
class Task:
    benchmark: str  # a registered benchmark's name
    split: str
    name: str  # the results.json key, e.g. "cirr/val", "fashioniq-dress/val"
    gallery_names: list[str]
    gallery_paths: list[Path]
    queries: list[Query]
    ks: tuple[int, ...]
    subset_ks: tuple[int, ...] = ()
    part: str = ""  # the part of a benchmark split into several tasks (a FashionIQ category); "" if one
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def index_of(self, name: str | None) -> int:
        """Gallery index of a name; -1 when absent."""
        if not self._index:
            self._index = {n: i for i, n in enumerate(self.gallery_names)}
        return -1 if name is None else self._index.get(name, -1)
