"""COCO 2014 image names and paths: {split}/COCO_{split}_{image_id:012d}.jpg."""

from __future__ import annotations

import re
from pathlib import Path

COCO_SPLITS = ("train2014", "val2014", "test2014", "test2015")
_NAME = re.compile(r"^COCO_(?P<split>[a-z]+\d{4})_(?P<id>\d{12})\.jpg$")


def coco_image_name(split: str, image_id: int) -> str:
    """coco_image_name("val2014", 42) -> "COCO_val2014_000000000042.jpg"."""
    return f"COCO_{split}_{int(image_id):012d}.jpg"


def coco_relpath(split: str, image_id: int) -> str:
    """Path relative to the COCO root: "val2014/COCO_val2014_000000000042.jpg"."""
    return f"{split}/{coco_image_name(split, image_id)}"


def coco_image_path(coco_root: str | Path, split: str, image_id: int) -> Path:
    return Path(coco_root) / split / coco_image_name(split, image_id)


def parse_coco_name(name: str) -> tuple[str, int]:
    """ "COCO_val2014_000000000042.jpg" (or any path ending in it) -> ("val2014", 42)."""
    m = _NAME.match(Path(name).name)
    if m is None:
        raise ValueError(f"not a COCO image name: {name!r}")
    return m["split"], int(m["id"])
