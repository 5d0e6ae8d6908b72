"""CIRCO: annotations/{val,test}.json and the COCO 2017 unlabeled gallery (github.com/miccunifi/CIRCO).

    root/annotations/val.json     [{"reference_img_id", "target_img_id", "relative_caption",
                                    "shared_concept", "gt_img_ids": [ids], "id", "semantic_aspects"}]
    root/annotations/test.json    the same without target_img_id, gt_img_ids and semantic_aspects
    root/COCO2017_unlabeled/annotations/image_info_unlabeled2017.json   {"images": [{"id", "file_name", …}]}
    root/COCO2017_unlabeled/unlabeled2017/<file_name>

Query ids start at 0 in each split. target_img_id is the first of gt_img_ids (the image the caption was
written for); a reader error names the file, record and field of anything else.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from coir.common.errors import ConfigError, DataFormatError
from coir.common.json_io import Record, expect_dict, expect_list, load_json, records, write_json_atomic
from coir.datasets.records import CIRCOQuery, COCOImage

CIRCO_SPLITS = ("val", "test")
# the nine semantic aspects of the official evaluation (miccunifi/CIRCO src/evaluation.py), in its order
SEMANTIC_ASPECTS = (
    "cardinality",
    "addition",
    "negation",
    "direct_addressing",
    "compare_change",
    "comparative_statement",
    "statement_with_conjunction",
    "spatial_relations_background",
    "viewpoint",
)
GALLERY_DIR = "COCO2017_unlabeled"


def _check_split(split: str) -> None:
    if split not in CIRCO_SPLITS:
        raise ConfigError(f"CIRCO split must be one of {', '.join(CIRCO_SPLITS)}, got {split!r}")


def circo_annotations_path(root: str | Path, split: str) -> Path:
    _check_split(split)
    return Path(root) / "annotations" / f"{split}.json"


def circo_image_info_path(root: str | Path) -> Path:
    return Path(root) / GALLERY_DIR / "annotations" / "image_info_unlabeled2017.json"


def circo_image_dir(root: str | Path) -> Path:
    return Path(root) / GALLERY_DIR / "unlabeled2017"


def _int_list(r: Record, key: str) -> tuple[int, ...]:
    values = r.get(key, list)
    for i, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, int):
            raise r.error(f"item {i}: expected integer, got {type(value).__name__}", key)
    return tuple(values)


def _query(r: Record, labelled: bool) -> CIRCOQuery:
    target = r.get("target_img_id", int, optional=not labelled)
    gts = _int_list(r, "gt_img_ids") if labelled or "gt_img_ids" in r.data else ()
    aspects = tuple(r.str_list("semantic_aspects", optional=not labelled) or ())
    if target is not None:
        if not gts:
            raise r.error("a query with a target_img_id needs its ground truths", "gt_img_ids")
        if target not in gts:
            raise r.error(f"target_img_id {target} is not among the ground truths", "gt_img_ids")
    if len(set(gts)) != len(gts):
        twice = sorted({g for g in gts if gts.count(g) > 1})[0]
        raise r.error(f"image {twice} is listed twice", "gt_img_ids")
    unknown = [a for a in aspects if a not in SEMANTIC_ASPECTS]
    if unknown:
        raise r.error(
            f"unknown aspect {unknown[0]!r} (the official nine: {', '.join(SEMANTIC_ASPECTS)})",
            "semantic_aspects",
        )
    return CIRCOQuery(
        id=r.get("id", int),
        reference_img_id=r.get("reference_img_id", int),
        relative_caption=r.get("relative_caption", str),
        shared_concept=r.get("shared_concept", str),
        target_img_id=target,
        gt_img_ids=gts,
        semantic_aspects=aspects,
    )


def read_circo_queries(root: str | Path, split: str) -> list[CIRCOQuery]:
    """The split's queries in file order; val requires the labels, test reads them when present."""
    path = circo_annotations_path(root, split)
    items = expect_list(path, load_json(path, f"CIRCO {split} annotations"))
    out, seen = [], set()
    for r in records(path, items):
        query = _query(r, labelled=split == "val")
        if query.id in seen:
            raise r.error(f"query id {query.id} appears twice", "id")
        seen.add(query.id)
        out.append(query)
    return out


def read_coco_image_info(path: str | Path) -> list[COCOImage]:
    """The "images" of a COCO image-info file, in file order (CIRCO's gallery order)."""
    path = Path(path)
    data = expect_dict(path, load_json(path, "COCO image-info file"))
    if "images" not in data:
        raise DataFormatError(path, "missing field", field="images")
    out, seen = [], set()
    for r in records(path, expect_list(path, data["images"], "images")):
        image = COCOImage(id=r.get("id", int), file_name=r.get("file_name", str))
        if image.id in seen:
            raise r.error(f"image id {image.id} appears twice", "id")
        seen.add(image.id)
        out.append(image)
    return out


def read_circo_gallery(root: str | Path) -> list[COCOImage]:
    return read_coco_image_info(circo_image_info_path(root))


def write_circo_queries(root: str | Path, split: str, queries: Iterable[CIRCOQuery]) -> Path:
    """The official key order; the test split's records carry no labels."""
    rows = []
    for q in queries:
        row: dict = {"reference_img_id": q.reference_img_id}
        if split == "val":
            row["target_img_id"] = q.target_img_id
        row |= {"relative_caption": q.relative_caption, "shared_concept": q.shared_concept}
        if split == "val":
            row["gt_img_ids"] = list(q.gt_img_ids)
        row["id"] = q.id
        if split == "val":
            row["semantic_aspects"] = list(q.semantic_aspects)
        rows.append(row)
    return write_json_atomic(circo_annotations_path(root, split), rows, indent=4)


def write_coco_image_info(root: str | Path, images: Sequence[COCOImage], size: tuple[int, int]) -> Path:
    """A COCO-2017-unlabeled-style image-info file (info, licenses, images, empty categories)."""
    width, height = size
    rows = [
        {"license": 1, "file_name": im.file_name, "height": height, "width": width, "id": im.id}
        for im in images
    ]
    payload = {
        "info": {"description": "coir synthetic COCO-unlabeled-style gallery", "version": "1.0"},
        "licenses": [{"id": 1, "name": "synthetic", "url": ""}],
        "images": rows,
        "categories": [],
    }
    return write_json_atomic(circo_image_info_path(root), payload)
