"""The official LaSCo files: lasco_{train,val}.json triplets and the two corpus forms.

lasco_val_corpus.json   = [{"id": 42, "path": "val/val2014/COCO_val2014_000000000042.jpg"}, …]
lasco_train_corpus.json = {"<id>": "train2014/COCO_train2014_….jpg", …}
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from coir.common.errors import ConfigError, DataFormatError
from coir.common.json_io import expect_dict, expect_list, load_json, records, write_json_atomic
from coir.common.unique import require_unique
from coir.datasets.records import CorpusImage, LascoTriplet

LASCO_SPLITS = ("train", "val")
_CORPUS_PREFIXES = ("val/", "train/")


def lasco_paths(lasco_dir: str | Path, split: str) -> tuple[Path, Path]:
    """(lasco_{split}.json, lasco_{split}_corpus.json) inside lasco_dir."""
    if split not in LASCO_SPLITS:
        raise ConfigError(f"LaSCo split must be one of {', '.join(LASCO_SPLITS)}, got {split!r}")
    d = Path(lasco_dir)
    return d / f"lasco_{split}.json", d / f"lasco_{split}_corpus.json"


def corpus_image_relpath(path_in_file: str) -> str:
    """Strip the leading "val/" (or "train/") of a corpus path: the rest is relative to the COCO root."""
    for prefix in _CORPUS_PREFIXES:
        if path_in_file.startswith(prefix):
            return path_in_file[len(prefix) :]
    return path_in_file


def read_lasco_triplets(path: str | Path) -> list[LascoTriplet]:
    """The triplets in file order. A triplet is its (qid, target image id): a VQA question in two
    complementary pairs gives two triplets of one qid; the same pair twice is a DataFormatError."""
    path = Path(path)
    out = []
    for r in records(path, expect_list(path, load_json(path, "LaSCo triplets file"))):
        qid = r.get("qid", int)
        q_id, q_path = r.pair("query-image", int, str)
        text = r.get("query-text", str)
        t_id, t_path = r.pair("target-image", int, str)
        out.append(LascoTriplet(qid, q_id, q_path, text, t_id, t_path))
    require_unique(path, ((t.qid, t.target_image_id) for t in out), "(qid, target image id)", "qid")
    return out


def write_lasco_triplets(path: str | Path, triplets: Iterable[LascoTriplet]) -> Path:
    return write_json_atomic(
        path,
        [
            {
                "qid": t.qid,
                "query-image": [t.query_image_id, t.query_image_path],
                "query-text": t.query_text,
                "target-image": [t.target_image_id, t.target_image_path],
            }
            for t in triplets
        ],
    )


def read_lasco_val_corpus(path: str | Path) -> list[CorpusImage]:
    """File order kept; paths as in the file (with "val/"): see corpus_image_relpath. A repeated id or
    path is a DataFormatError."""
    path = Path(path)
    images = [
        CorpusImage(id=r.get("id", int), path=r.get("path", str))
        for r in records(path, expect_list(path, load_json(path, "LaSCo val corpus file")))
    ]
    require_unique(path, (im.id for im in images), "image id", "id")
    require_unique(path, (im.path for im in images), "image path", "path")
    return images


def read_lasco_train_corpus(path: str | Path) -> list[CorpusImage]:
    """The dict form {"<id>": "train2014/….jpg"}; file order kept, ids as int. A repeated id (key) or
    path is a DataFormatError."""
    path = Path(path)
    out = []
    corpus = expect_dict(path, load_json(path, "LaSCo train corpus file", unique_keys=True))
    for i, (key, value) in enumerate(corpus.items()):
        if not key.isdigit():
            raise DataFormatError(path, f"image id must be digits, got {key!r}", index=i, field=key)
        if not isinstance(value, str):
            raise DataFormatError(
                path, f"expected a path string, got {type(value).__name__}", index=i, field=key
            )
        out.append(CorpusImage(id=int(key), path=value))
    require_unique(path, (im.id for im in out), "image id")  # "7" and "007"
    require_unique(path, (im.path for im in out), "image path")
    return out


def read_lasco_corpus(path: str | Path) -> list[CorpusImage]:
    """Either corpus form, chosen by the file's top-level type."""
    data = load_json(path, "LaSCo corpus file")
    return read_lasco_train_corpus(path) if isinstance(data, dict) else read_lasco_val_corpus(path)


def write_lasco_corpus(path: str | Path, images: Iterable[CorpusImage], split: str) -> Path:
    """The official form of the split. val: a list, paths given a "val/" prefix if they lack one;
    train: a dict id -> path (paths as given, without a prefix)."""
    if split == "val":
        rows = [
            {"id": im.id, "path": im.path if im.path.startswith("val/") else f"val/{im.path}"}
            for im in images
        ]
        return write_json_atomic(path, rows)
    if split == "train":
        return write_json_atomic(path, {str(im.id): corpus_image_relpath(im.path) for im in images})
    raise ConfigError(f"LaSCo split must be one of {', '.join(LASCO_SPLITS)}, got {split!r}")
