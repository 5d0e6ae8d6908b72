"""CIRR: captions/cap.rc2.{split}.json and image_splits/split.rc2.{split}.json (split: train|val|test1)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from coir.common.errors import ConfigError, DataFormatError
from coir.common.json_io import Record, expect_dict, expect_list, load_json, records, write_json_atomic
from coir.common.unique import require_unique
from coir.datasets.records import CIRRImageSet, CIRRTriplet

CIRR_SPLITS = ("train", "val", "test1")


def _check_split(split: str) -> None:
    if split not in CIRR_SPLITS:
        raise ConfigError(f"CIRR split must be one of {', '.join(CIRR_SPLITS)}, got {split!r}")


def cirr_captions_path(root: str | Path, split: str) -> Path:
    _check_split(split)
    return Path(root) / "captions" / f"cap.rc2.{split}.json"


def cirr_split_path(root: str | Path, split: str) -> Path:
    _check_split(split)
    return Path(root) / "image_splits" / f"split.rc2.{split}.json"


def cirr_image_path(root: str | Path, relpath: str) -> Path:
    """root joined with a split-file path such as "./dev/dev-244-0-img0.png"."""
    return Path(root) / relpath


def _img_set(r: Record) -> CIRRImageSet:
    s = Record(r.path, r.index, r.get("img_set", dict))
    try:
        members = s.str_list("members")
        return CIRRImageSet(
            id=s.get("id", int),
            members=tuple(members),
            reference_rank=s.get("reference_rank", int, optional=True),
            target_rank=s.get("target_rank", int, optional=True),
        )
    except DataFormatError as e:
        raise r.error(str(e).split(": ", 1)[-1], f"img_set.{e.field}") from None


def _target_soft(r: Record) -> dict[str, float]:
    soft = r.get("target_soft", dict)
    for name, score in soft.items():
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            raise r.error(f"score of {name!r}: expected number, got {type(score).__name__}", "target_soft")
    return {name: float(score) for name, score in soft.items()}


def read_cirr_triplets(root: str | Path, split: str) -> list[CIRRTriplet]:
    """The split's triplets in file order; a repeated pairid is a DataFormatError."""
    path = cirr_captions_path(root, split)
    has_target = split != "test1"
    out = []
    for r in records(path, expect_list(path, load_json(path, "CIRR captions file"))):
        out.append(
            CIRRTriplet(
                pairid=r.get("pairid", int),
                reference=r.get("reference", str),
                caption=r.get("caption", str),
                img_set=_img_set(r),
                target_hard=r.get("target_hard", str, optional=not has_target),
                target_soft=_target_soft(r) if has_target or "target_soft" in r.data else {},
            )
        )
    require_unique(path, (t.pairid for t in out), "pairid", "pairid")
    return out


def read_cirr_image_split(root: str | Path, split: str) -> dict[str, str]:
    """{image name: path relative to root, e.g. "./dev/dev-244-0-img0.png"} in file order; a name given
    twice is a DataFormatError (see coir.common.paths for where a path may point)."""
    path = cirr_split_path(root, split)
    mapping = expect_dict(path, load_json(path, "CIRR image split file", unique_keys=True))
    for i, (name, rel) in enumerate(mapping.items()):
        if not isinstance(rel, str):
            raise DataFormatError(
                path, f"expected a path string, got {type(rel).__name__}", index=i, field=name
            )
    return mapping


def write_cirr_triplets(root: str | Path, split: str, triplets: Iterable[CIRRTriplet]) -> Path:
    """Official key order; test1 records carry no target fields and no ranks."""
    path = cirr_captions_path(root, split)
    rows = []
    for t in triplets:
        row: dict = {"pairid": t.pairid, "reference": t.reference}
        if split != "test1":
            row["target_hard"] = t.target_hard
            row["target_soft"] = dict(t.target_soft)
        row["caption"] = t.caption
        img_set: dict = {"id": t.img_set.id, "members": list(t.img_set.members)}
        if split != "test1":
            img_set["reference_rank"] = t.img_set.reference_rank
            img_set["target_rank"] = t.img_set.target_rank
        row["img_set"] = img_set
        rows.append(row)
    return write_json_atomic(path, rows)


def write_cirr_image_split(root: str | Path, split: str, mapping: Mapping[str, str]) -> Path:
    return write_json_atomic(cirr_split_path(root, split), dict(mapping))
