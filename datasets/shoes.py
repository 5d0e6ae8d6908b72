"""Shoes (Guo et al., "Dialog-based interactive image retrieval", NeurIPS 2018) in its published layout:

    ROOT/relative_captions_shoes.json   [{"ImageName": target, "ReferenceImageName": reference,
                                          "RelativeCaption": text}, ...]   (10,751 entries)
    ROOT/train_im_names.txt             one image file name a line (10,000 names)
    ROOT/eval_im_names.txt              one image file name a line (4,658 names)
    IMAGES/womens_<category>/<n>/img_womens_<category>_<k>.jpg   (the Attribute Discovery images)

Images are found by file name anywhere below a `womens_*` folder of the image root (the root itself
by default), as the dataset's readme says; ARTEMIS's prepare_shoes_data.py does the same (its glob
`womens/*/*/*.jpg`). coir calls the two splits "train" and "test" (the eval list; ARTEMIS names it
"val", the papers report it as the test set).

A triplet belongs to a split when both of its images are in that split's list (ARTEMIS's
produce_annotations_per_split); the others are dropped, with a reason: "cross_split" (its other image
is in the other split's list; the reference drops these silently) or "unlisted_image" (an image in
neither list). On the published files no triplet is dropped: 8,990 train + 1,761 test = 10,751; 27
entries have ImageName == ReferenceImageName (26 train, 1 test) and are kept, as in the reference.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from coir.common.atomic import write_bytes_atomic
from coir.common.errors import CoirError, ConfigError, DataFormatError, MissingInputError
from coir.common.json_io import expect_list, load_json, records, write_json_atomic
from coir.datasets.records import ShoesTriplet

SHOES_SPLITS = ("train", "test")
CAPTIONS_FILE = "relative_captions_shoes.json"
SPLIT_FILES = {"train": "train_im_names.txt", "test": "eval_im_names.txt"}
IMAGE_FOLDER_PREFIX = "womens_"
DROP_REASONS = ("cross_split", "unlisted_image")


def _check_split(split: str) -> None:
    if split not in SHOES_SPLITS:
        raise ConfigError(f"Shoes split must be one of {', '.join(SHOES_SPLITS)}, got {split!r}")


def shoes_captions_path(root: str | Path) -> Path:
    return Path(root) / CAPTIONS_FILE


def shoes_split_path(root: str | Path, split: str) -> Path:
    _check_split(split)
    return Path(root) / SPLIT_FILES[split]


def shoes_image_relpath(name: str) -> str:
    """Where the synthetic world puts an image: womens_<category>/<0|1>/<name>, the shape of the real
    layout (whose subfolder is not the number's parity: readers search by name, never compute this)."""
    stem = name.removeprefix("img_").rsplit(".", 1)[0]
    category, _, number = stem.rpartition("_")
    if not category.startswith(IMAGE_FOLDER_PREFIX) or not number.isdigit():
        raise ValueError(f"not a Shoes image name (img_womens_<category>_<k>.jpg): {name!r}")
    return f"{category}/{int(number) % 2}/{name}"


def read_shoes_captions(root: str | Path) -> list[ShoesTriplet]:
    """Every entry of relative_captions_shoes.json, in file order."""
    path = shoes_captions_path(root)
    entries = expect_list(path, load_json(path, "Shoes captions file"))
    out = []
    for r in records(path, entries):
        triplet = ShoesTriplet(
            index=r.index,
            reference=r.get("ReferenceImageName", str),
            caption=r.get("RelativeCaption", str),
            target=r.get("ImageName", str),
        )
        for key, name in (("ReferenceImageName", triplet.reference), ("ImageName", triplet.target)):
            if not name.strip():
                raise r.error("empty image name", key)
        out.append(triplet)
    return out


def read_shoes_image_names(root: str | Path, split: str) -> list[str]:
    """The names of a split file in file order (blank lines skipped, surrounding spaces stripped)."""
    return [name for _, name in _numbered_names(shoes_split_path(root, split))]


def _numbered_names(path: Path) -> list[tuple[int, str]]:
    if not path.is_file():
        raise MissingInputError(path, "Shoes image list")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataFormatError(path, f"not UTF-8 text: {error}") from None
    names: list[tuple[int, str]] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        name = line.strip()
        if not name:
            continue
        if "/" in name or "\\" in name:
            raise DataFormatError(path, f"line {number}: expected a file name, got the path {name!r}")
        if name in first_line:
            raise DataFormatError(
                path, f"line {number}: {name!r} is listed twice (first on line {first_line[name]})"
            )
        first_line[name] = number
        names.append((number, name))
    return names


@dataclass(frozen=True)
class DroppedTriplet:
    triplet: ShoesTriplet
    reason: str  # one of DROP_REASONS
    message: str


@dataclass
class ShoesSplit:
    """One split: its images (the list file's order), the triplets kept (both images in the list,
    captions-file order) and the triplets dropped that have one image in it."""

    split: str
    images: list[str]
    triplets: list[ShoesTriplet]
    dropped: list[DroppedTriplet] = field(default_factory=list)

    def dropped_count(self, reason: str) -> int:
        return sum(d.reason == reason for d in self.dropped)


def read_shoes_split(root: str | Path, split: str) -> ShoesSplit:
    """The split's images and triplets; ConfigError on an unknown split, DataFormatError on a malformed
    file or an image listed in both split files."""
    _check_split(split)
    other = next(s for s in SHOES_SPLITS if s != split)
    mine = _numbered_names(shoes_split_path(root, split))
    theirs = _numbered_names(shoes_split_path(root, other))
    own = {name for _, name in mine}
    for number, name in theirs:
        if name in own:
            raise DataFormatError(
                shoes_split_path(root, other),
                f"line {number}: {name!r} is also in {SPLIT_FILES[split]} (the splits must not share images)",
            )
    elsewhere = {name for _, name in theirs}
    kept, dropped = [], []
    for t in read_shoes_captions(root):
        inside = [n in own for n in (t.reference, t.target)]
        if all(inside):
            kept.append(t)
        elif any(inside):
            outside = t.target if inside[0] else t.reference
            role = "target" if inside[0] else "reference"
            if outside in elsewhere:
                message = (
                    f"entry {t.index}: {role} {outside!r} is in the {other} split, the other image in {split}"
                )
                dropped.append(DroppedTriplet(t, "cross_split", message))
            else:
                message = f"entry {t.index}: {role} {outside!r} is in neither image list"
                dropped.append(DroppedTriplet(t, "unlisted_image", message))
    return ShoesSplit(split, [name for _, name in mine], kept, dropped)


def locate_shoes_images(image_root: str | Path, names: Iterable[str]) -> tuple[dict[str, Path], list[str]]:
    """({name: path} of the names found below a womens_* folder of image_root, [names not found] in the
    given order). CoirError when a wanted name is found at two places (which one is meant is unknown)."""
    root = Path(image_root)
    if not root.is_dir():
        raise MissingInputError(root, "Shoes image folder")
    wanted = list(dict.fromkeys(names))
    pending = set(wanted)
    found: dict[str, Path] = {}
    seen: set[str] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a symbolic link back up the tree
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        parts = (root.name, *Path(folder).relative_to(root).parts)
        if not any(p.startswith(IMAGE_FOLDER_PREFIX) for p in parts):
            continue
        for name in files:
            if name in found:
                raise CoirError(
                    f"Shoes image {name!r} is at two places: {found[name]} and {Path(folder) / name}"
                )
            if name in pending:
                found[name] = Path(folder) / name
    return found, [n for n in wanted if n not in found]


def shoes_image_paths(image_root: str | Path, names: list[str], listed_in: str) -> dict[str, Path]:
    """{name: path} for every name; MissingInputError naming the first missing name and how many are."""
    found, missing = locate_shoes_images(image_root, names)
    if missing:
        raise MissingInputError(
            image_root,
            f"Shoes image {missing[0]!r} of {listed_in} ({len(missing)} of its {len(set(names))} images "
            f"missing; searched every {IMAGE_FOLDER_PREFIX}* folder)",
        )
    return found


def write_shoes_captions(root: str | Path, triplets: Iterable[ShoesTriplet]) -> Path:
    """The published layout: one line, keys ImageName, ReferenceImageName, RelativeCaption."""
    rows = [
        {"ImageName": t.target, "ReferenceImageName": t.reference, "RelativeCaption": t.caption}
        for t in triplets
    ]
    return write_json_atomic(shoes_captions_path(root), rows)


def write_shoes_image_names(root: str | Path, split: str, names: Iterable[str]) -> Path:
    return write_bytes_atomic(shoes_split_path(root, split), "".join(f"{n}\n" for n in names).encode())
