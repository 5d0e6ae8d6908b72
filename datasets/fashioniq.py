"""FashionIQ: captions/cap.{category}.{split}.json, image_splits/split.{category}.{split}.json,
images/<asin>.jpg (category: dress|shirt|toptee; split: train|val|test)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from coir.common.errors import ConfigError, DataFormatError
from coir.common.json_io import Record, expect_list, load_json, records, write_json_atomic
from coir.common.paths import outside_root
from coir.common.unique import require_unique
from coir.datasets.records import FASHIONIQ_CATEGORIES, FashionIQTriplet

FASHIONIQ_SPLITS = ("train", "val", "test")


FASHIONIQ_TEMPLATE = "{c1} and {c2}"


def join_fashioniq_captions(captions: tuple[str, ...] | list[str], template: str = FASHIONIQ_TEMPLATE) -> str:
    """FashionIQ's two relative captions as one text, as CLIP4Cir joins them: strip ".?, " from both,
    str.capitalize() the first (which also lower-cases the rest of it, as CLIP4Cir does), then fill
    the template ("{c1} and {c2}": "Is red and has long sleeves")."""
    if not captions:
        return ""
    first = captions[0].strip(".?, ").capitalize()
    if len(captions) == 1:
        return first
    return template.format(c1=first, c2=captions[1].strip(".?, "))


def _check(category: str, split: str) -> None:
    if category not in FASHIONIQ_CATEGORIES:
        raise ConfigError(
            f"FashionIQ category must be one of {', '.join(FASHIONIQ_CATEGORIES)}, got {category!r}"
        )
    if split not in FASHIONIQ_SPLITS:
        raise ConfigError(f"FashionIQ split must be one of {', '.join(FASHIONIQ_SPLITS)}, got {split!r}")


def fashioniq_captions_path(root: str | Path, category: str, split: str) -> Path:
    _check(category, split)
    return Path(root) / "captions" / f"cap.{category}.{split}.json"


def fashioniq_split_path(root: str | Path, category: str, split: str) -> Path:
    _check(category, split)
    return Path(root) / "image_splits" / f"split.{category}.{split}.json"


def fashioniq_image_path(root: str | Path, asin: str) -> Path:
    return Path(root) / "images" / f"{asin}.jpg"


def _asin_problem(asin: str) -> str | None:
    """Why the image of `asin` would not be inside images/; None when it is."""
    reason = outside_root(f"{asin}.jpg")
    return None if reason is None else f"asin {asin!r}: its image path {reason}"


def _asin(record: Record, key: str, optional: bool = False) -> str | None:
    """An asin field of a captions record, refused when its image path would leave images/."""
    asin = record.get(key, str, optional=optional)
    problem = None if asin is None else _asin_problem(asin)
    if problem is not None:
        raise record.error(problem, key)
    return asin


def read_fashioniq_triplets(root: str | Path, category: str, split: str) -> list[FashionIQTriplet]:
    path = fashioniq_captions_path(root, category, split)
    return [
        FashionIQTriplet(
            category=category,
            candidate=_asin(r, "candidate"),
            captions=tuple(r.str_list("captions")),
            target=_asin(r, "target", optional=split == "test"),
        )
        for r in records(path, expect_list(path, load_json(path, "FashionIQ captions file")))
    ]


def read_fashioniq_image_split(root: str | Path, category: str, split: str) -> list[str]:
    path = fashioniq_split_path(root, category, split)
    asins = expect_list(path, load_json(path, "FashionIQ image split file"))
    for i, asin in enumerate(asins):
        if not isinstance(asin, str):
            raise DataFormatError(path, f"expected an asin string, got {type(asin).__name__}", index=i)
        problem = _asin_problem(asin)
        if problem is not None:
            raise DataFormatError(path, problem, index=i)
    require_unique(path, asins, "asin")
    return asins


def write_fashioniq_triplets(
    root: str | Path, category: str, split: str, triplets: Iterable[FashionIQTriplet]
) -> Path:
    """Official layout (indent 4, keys target, candidate, captions; test: no target)."""
    rows = []
    for t in triplets:
        row: dict = {} if t.target is None else {"target": t.target}
        row["candidate"] = t.candidate
        row["captions"] = list(t.captions)
        rows.append(row)
    return write_json_atomic(fashioniq_captions_path(root, category, split), rows, indent=4)


def write_fashioniq_image_split(root: str | Path, category: str, split: str, asins: Iterable[str]) -> Path:
    return write_json_atomic(fashioniq_split_path(root, category, split), list(asins), indent=4)
