"""Benchmark tasks: the gallery and the queries of one evaluation, read from the official files.

A Task is benchmark-neutral (names, image paths, texts, targets, the names removed from a query's
ranking and the subset it is also ranked within), so one runner serves every benchmark; each
benchmark module (eval/benchmarks/) builds its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from coir.common.errors import CoirError
from coir.common.unique import duplicates


@dataclass(frozen=True)
class Query:
    key: str  # unique within a task: CIRR pairid, LaSCo "<qid>_<target image id>", FashionIQ "<index>"
    reference: str
    reference_path: Path
    text: str
    target: str | None  # None on test splits
    exclude: tuple[str, ...] = ()  # gallery names removed from this query's ranking
    subset: tuple[str, ...] = ()  # CIRR: img_set members minus the reference
    # graded relevance of gallery names (CIRR target_soft: 1.0, 0.5, 0.2, -1.0); empty: none given
    soft: tuple[tuple[str, float], ...] = ()
    # every gallery image that answers the query (CIRCO's gt_img_ids, the target among them); empty:
    # the target alone. Ranks and recalls stay the target's; the benchmark's metrics read these.
    targets: tuple[str, ...] = ()
    aspects: tuple[str, ...] = ()  # labels the benchmark reports per-label metrics for (CIRCO)


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
    # per gallery image, the label a hit is judged by: when given, any gallery image whose label is
    # the target's is a hit and a query's target rank is that of the first such image (Fashion200k:
    # the description); empty: only the target image itself is a hit
    gallery_labels: list[str] = field(default_factory=list)
    # the protocol settings that define the task's numbers (CIRCO: the query template, whether the
    # reference is removed), recorded beside the metrics in results.json
    protocol: dict[str, str] = field(default_factory=dict)
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def index_of(self, name: str | None) -> int:
        """Gallery index of a name; -1 when absent."""
        if not self._index:
            self._index = {n: i for i, n in enumerate(self.gallery_names)}
        return -1 if name is None else self._index.get(name, -1)

    def hit_groups(self, queries: list[Query]) -> tuple[list[int], list[int]] | None:
        """(group id of every gallery image, group id of each query's target or -1) when hits are
        judged by label; None when only the target image is a hit."""
        if not self.gallery_labels:
            return None
        ids: dict[str, int] = {}
        gallery = [ids.setdefault(label, len(ids)) for label in self.gallery_labels]
        targets = [self.index_of(q.target) for q in queries]
        return gallery, [gallery[t] if t >= 0 else -1 for t in targets]

    def is_hit(self, query: Query, name: str) -> bool:
        """Whether gallery image `name` answers the query (the target, or an image with its label)."""
        if name == query.target or name in query.targets:
            return True
        if not self.gallery_labels or query.target is None:
            return False
        target, other = self.index_of(query.target), self.index_of(name)
        return target >= 0 and other >= 0 and self.gallery_labels[target] == self.gallery_labels[other]


def check_task(task: Task) -> None:
    """CoirError when a gallery name or a query key repeats: a repeated gallery image takes two places in
    every ranking (lowering every recall), a repeated query is scored twice and its submission key written
    twice. Checked before any model runs or any file is written."""
    for what, values in (("gallery name", task.gallery_names), ("query key", [q.key for q in task.queries])):
        repeated = duplicates(values)
        if repeated:
            first, repeat, value = repeated[0]
            raise CoirError(
                f"{task.name}: {what} {value!r} appears twice (entries {first} and {repeat}; "
                f"{len(repeated)} repeat(s) in all): fix the benchmark's files"
            )
