"""Benchmark tasks: the gallery and the queries of one evaluation, read from the official files.

A Task is benchmark-neutral (names, image paths, texts, targets, the names removed from a query's
ranking and the subset it is also ranked within), so one runner serves CIRR, FashionIQ and LaSCo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from coir.common.errors import ConfigError, DataFormatError
from coir.datasets.fashioniq import FASHIONIQ_TEMPLATE, join_fashioniq_captions
from coir.datasets.records import FASHIONIQ_CATEGORIES

BENCHMARKS = ("cirr", "fashioniq", "lasco")
CIRR_KS = (1, 5, 10, 50)
CIRR_SUBSET_KS = (1, 2, 3)
FASHIONIQ_KS = (10, 50)
LASCO_KS = (1, 5, 10, 50)


@dataclass(frozen=True)
class Query:
    key: str  # CIRR pairid, LaSCo qid, FashionIQ "<index>"
    reference: str
    reference_path: Path
    text: str
    target: str | None  # None on test splits
    exclude: tuple[str, ...] = ()  # gallery names removed from this query's ranking
    subset: tuple[str, ...] = ()  # CIRR: img_set members minus the reference


@dataclass
class Task:
    benchmark: str
    split: str
    name: str  # the results.json key, e.g. "cirr/val", "fashioniq-dress/val"
    gallery_names: list[str]
    gallery_paths: list[Path]
    queries: list[Query]
    ks: tuple[int, ...]
    subset_ks: tuple[int, ...] = ()
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def index_of(self, name: str | None) -> int:
        """Gallery index of a name; -1 when absent."""
        if not self._index:
            self._index = {n: i for i, n in enumerate(self.gallery_names)}
        return -1 if name is None else self._index.get(name, -1)


def cirr_task(root: str | Path, split: str, image_root: str | Path | None = None) -> Task:
    from coir.datasets.cirr import (
        cirr_captions_path,
        cirr_image_path,
        read_cirr_image_split,
        read_cirr_triplets,
    )

    images = read_cirr_image_split(root, split)
    triplets = read_cirr_triplets(root, split)
    image_root = Path(image_root or root)
    names = list(images)
    paths = [cirr_image_path(image_root, rel) for rel in images.values()]
    queries = []
    for i, t in enumerate(triplets):
        if t.reference not in images:
            raise DataFormatError(
                cirr_captions_path(root, split),
                "reference image is not in the split's image list",
                i,
                "reference",
            )
        subset = tuple(dict.fromkeys(m for m in t.img_set.members if m != t.reference))
        queries.append(
            Query(
                key=str(t.pairid),
                reference=t.reference,
                reference_path=cirr_image_path(image_root, images[t.reference]),
                text=t.caption,
                target=t.target_hard,
                exclude=(t.reference,),
                subset=subset,
            )
        )
    return Task("cirr", split, f"cirr/{split}", names, paths, queries, CIRR_KS, CIRR_SUBSET_KS)


def fashioniq_tasks(
    root: str | Path,
    split: str,
    image_root: str | Path | None = None,
    categories: tuple[str, ...] | list[str] = FASHIONIQ_CATEGORIES,
    template: str = FASHIONIQ_TEMPLATE,
    mask_reference: bool = False,
) -> list[Task]:
    """One task per category; gallery = that category's split images."""
    from coir.datasets.fashioniq import (
        fashioniq_image_path,
        read_fashioniq_image_split,
        read_fashioniq_triplets,
    )

    def image_path(asin: str) -> Path:
        return Path(image_root) / f"{asin}.jpg" if image_root else fashioniq_image_path(root, asin)

    tasks = []
    for category in categories:
        if category not in FASHIONIQ_CATEGORIES:
            raise ConfigError(
                f"FashionIQ category must be one of {', '.join(FASHIONIQ_CATEGORIES)}: {category!r}"
            )
        names = read_fashioniq_image_split(root, category, split)
        queries = [
            Query(
                key=str(i),
                reference=t.candidate,
                reference_path=image_path(t.candidate),
                text=join_fashioniq_captions(t.captions, template),
                target=t.target,
                exclude=(t.candidate,) if mask_reference else (),
            )
            for i, t in enumerate(read_fashioniq_triplets(root, category, split))
        ]
        paths = [image_path(n) for n in names]
        tasks.append(
            Task("fashioniq", split, f"fashioniq-{category}/{split}", names, paths, queries, FASHIONIQ_KS)
        )
    return tasks


def lasco_task(
    root: str | Path, split: str, image_root: str | Path | None = None, mask_reference: bool = False
) -> Task:
    """root holds lasco_{split}.json and lasco_{split}_corpus.json; image_root is the COCO root
    (the folder holding val2014/); by default root itself when it has a val2014/ or train2014/."""
    from coir.datasets.lasco_files import (
        corpus_image_relpath,
        lasco_paths,
        read_lasco_corpus,
        read_lasco_triplets,
    )

    triplets_path, corpus_path = lasco_paths(root, split)
    if image_root is None:
        if not any((Path(root) / d).is_dir() for d in ("val2014", "train2014")):
            raise ConfigError("--image-root: LaSCo needs the COCO image root (the folder holding val2014/)")
        image_root = root
    image_root = Path(image_root)
    corpus = read_lasco_corpus(corpus_path)
    names = [str(im.id) for im in corpus]
    paths = [image_root / corpus_image_relpath(im.path) for im in corpus]
    queries = [
        Query(
            key=str(t.qid),
            reference=str(t.query_image_id),
            reference_path=image_root / corpus_image_relpath(t.query_image_path),
            text=t.query_text,
            target=str(t.target_image_id),
            exclude=(str(t.query_image_id),) if mask_reference else (),
        )
        for t in read_lasco_triplets(triplets_path)
    ]
    return Task("lasco", split, f"lasco/{split}", names, paths, queries, LASCO_KS)


def build_tasks(
    benchmark: str,
    split: str,
    data_root: str | Path,
    image_root: str | Path | None = None,
    categories: tuple[str, ...] | list[str] = FASHIONIQ_CATEGORIES,
    fashioniq_template: str = FASHIONIQ_TEMPLATE,
    mask_reference: bool = False,
) -> list[Task]:
    if benchmark == "cirr":
        return [cirr_task(data_root, split, image_root)]
    if benchmark == "fashioniq":
        return fashioniq_tasks(data_root, split, image_root, categories, fashioniq_template, mask_reference)
    if benchmark == "lasco":
        return [lasco_task(data_root, split, image_root, mask_reference)]
    raise ConfigError(f"--benchmark must be one of {', '.join(BENCHMARKS)}, got {benchmark!r}")
