"""A hand-written Shoes root (tests/test_shoes_*.py): seven entries, five test images, two train images.

Every image is a solid grey square (PNG bytes under a .jpg name, so its value is exact); `GREY` gives
its level. The captions are signed numbers: the grey model of test_shoes_eval.py reads them as the
shift from the reference's level to the wanted one.

    entry  reference  caption  target  split
    0      A (10)     +40      B (50)  test
    1      T1 (30)    +20      B (50)  cross-split (dropped)
    2      B (50)     +45      C (60)  test
    3      T1 (30)    +40      T2 (70) train
    4      E (200)    +0       E (200) test (the target is its own reference)
    5      D (100)    +0       B (50)  test
    6      C (60)     -50      A (10)  test
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image

NAMES = {
    "A": "img_womens_flats_1.jpg",
    "B": "img_womens_flats_2.jpg",
    "C": "img_womens_boots_3.jpg",
    "D": "img_womens_boots_4.jpg",
    "E": "img_womens_pumps_5.jpg",
    "T1": "img_womens_flats_6.jpg",
    "T2": "img_womens_boots_7.jpg",
}
GREY = {"A": 10, "B": 50, "C": 60, "D": 100, "E": 200, "T1": 30, "T2": 70}
ENTRIES = [
    ("A", "+40", "B"),
    ("T1", "+20", "B"),
    ("B", "+45", "C"),
    ("T1", "+40", "T2"),
    ("E", "+0", "E"),
    ("D", "+0", "B"),
    ("C", "-50", "A"),
]
EVAL_ORDER = ["C", "A", "E", "B", "D"]  # eval_im_names.txt, deliberately not sorted
TRAIN_ORDER = ["T2", "T1"]
# where each image lies: the published layout (womens_<category>/<n>/) and ARTEMIS's (womens/womens_*/<n>/)
FOLDERS = {
    "A": "womens_flats/0",
    "B": "womens_flats/1",
    "C": "images/womens/womens_boots/0",
    "D": "images/womens/womens_boots/1",
    "E": "womens_pumps/0",
    "T1": "womens_flats/0",
    "T2": "images/womens/womens_boots/1",
}


def grey_png(level: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), (level, level, level)).save(out, format="PNG")
    return out.getvalue()


def make_shoes(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rows = [
        {"ImageName": NAMES[t], "ReferenceImageName": NAMES[r], "RelativeCaption": c} for r, c, t in ENTRIES
    ]
    (root / "relative_captions_shoes.json").write_text(json.dumps(rows))
    (root / "eval_im_names.txt").write_text("".join(NAMES[k] + "\n" for k in EVAL_ORDER))
    (root / "train_im_names.txt").write_text("".join(NAMES[k] + "\n" for k in TRAIN_ORDER))
    for key, folder in FOLDERS.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / NAMES[key]).write_bytes(grey_png(GREY[key]))
    # the same name outside any womens_* folder is not an image of the dataset
    (root / "other").mkdir(exist_ok=True)
    (root / "other" / NAMES["A"]).write_bytes(grey_png(255))
    return root
