"""The published LaSCo files as shard samples: `coir data lasco --from-official lasco_{split}.json
[--official-corpus lasco_{split}_corpus.json]`.

Refused before anything is written (DataFormatError naming the file and records): a qid, corpus id or
corpus path given twice (the readers), and an image id that names two different paths (two triplets,
or a triplet and the corpus). Recorded in the error tables and skipped: a path that leaves the COCO root
(absolute, or climbing out with ".."), and a triplet whose image is not in the given corpus.
"""

from __future__ import annotations

from pathlib import Path

from coir.common import fields
from coir.common.errors import CoirError, DataFormatError
from coir.common.paths import outside_root
from coir.datasets.lasco.config import LascoBuildConfig
from coir.datasets.lasco_files import corpus_image_relpath, read_lasco_corpus, read_lasco_triplets
from coir.datasets.records import LascoTriplet
from coir.datasets.shards.spec import SampleSpec, error_record


def official_sample(t: LascoTriplet, coco: Path) -> SampleSpec:
    qpath, tpath = corpus_image_relpath(t.query_image_path), corpus_image_relpath(t.target_image_path)
    meta = {
        "qid": t.qid,
        "query_image": [t.query_image_id, qpath],
        "target_image": [t.target_image_id, tpath],
        "text": t.query_text,
    }
    row = {
        "qid": t.qid,
        "target_qid": -1,
        "query_image_id": t.query_image_id,
        "query_path": qpath,
        "target_image_id": t.target_image_id,
        "target_path": tpath,
        "text": t.query_text,
    }
    return SampleSpec(
        f"{t.qid}_{t.target_image_id}",
        ((fields.QUERY_IMAGE, str(coco / qpath)), (fields.TARGET_IMAGE, str(coco / tpath))),
        t.query_text,
        meta,
        row,
    )


Given = tuple[str, Path, int]  # an image's path relative to the COCO root, the file and record naming it


def _images_of(official: list[LascoTriplet], file: Path, known: dict[int, Given]) -> dict[int, Given]:
    """{image id: where given}: `known` (the corpus) and every image the triplets name; DataFormatError
    when one id names two paths."""
    images = dict(known)
    for index, t in enumerate(official):
        for side, image_id, path in (
            ("query-image", t.query_image_id, t.query_image_path),
            ("target-image", t.target_image_id, t.target_image_path),
        ):
            relpath = corpus_image_relpath(path)
            first = images.setdefault(image_id, (relpath, file, index))
            if first[0] != relpath:
                message = (
                    f"image {image_id} is {relpath!r} here but {first[0]!r} in {first[1]}, record {first[2]}"
                )
                raise DataFormatError(file, message, index, side)
    return images


def official_sets(
    config: LascoBuildConfig, coco: Path
) -> tuple[list[SampleSpec], list[SampleSpec], dict[str, int], list[dict], list[dict]]:
    """(triplet samples, gallery samples, report, triplet errors, gallery errors)."""
    file = Path(config.from_official)
    official = read_lasco_triplets(file)
    if not official:
        raise CoirError(f"{file}: no triplets in the file")
    gallery_errors: list[dict] = []
    corpus: dict[int, Given] = {}
    if config.official_corpus:
        corpus_file = Path(config.official_corpus)
        for index, im in enumerate(read_lasco_corpus(corpus_file)):
            corpus[im.id] = (corpus_image_relpath(im.path), corpus_file, index)
    images = _images_of(official, file, corpus)
    usable = {}
    for image_id, (relpath, where, index) in images.items():
        reason = outside_root(relpath)
        if reason is None:
            usable[image_id] = relpath
        elif image_id in corpus:  # a triplet's image outside the root is its triplet's error
            message = f"{where}, record {index}: image {image_id} path {relpath!r} {reason}"
            gallery_errors.append(error_record("gallery", str(image_id), str(where), "bad_path", message))
    triplets, triplet_errors = [], []
    for index, t in enumerate(official):
        problem = _triplet_problem(t, usable, corpus, images, bool(config.official_corpus))
        if problem is None:
            triplets.append(official_sample(t, coco))
        else:
            reason, message = problem
            message = f"{file}, record {index}: {message}"
            triplet_errors.append(error_record("triplet", str(t.qid), str(file), reason, message))
    gallery_ids = sorted(usable if not config.official_corpus else set(usable) & set(corpus))
    gallery = [gallery_sample(image_id, usable[image_id], coco) for image_id in gallery_ids]
    report = {
        "official_triplets": len(official),
        "triplets": len(triplets),
        "gallery_images": len(gallery),
        "errors": len(triplet_errors) + len(gallery_errors),
    }
    return triplets, gallery, report, triplet_errors, gallery_errors


def _triplet_problem(
    t: LascoTriplet,
    usable: dict[int, str],
    corpus: dict[int, Given],
    images: dict[int, Given],
    with_corpus: bool,
) -> tuple[str, str] | None:
    """(reason, message) when the triplet cannot be sharded; None when it can."""
    for side, image_id in (("query", t.query_image_id), ("target", t.target_image_id)):
        if image_id not in usable:
            relpath = images[image_id][0]
            return "bad_path", f"{side} image {image_id} path {relpath!r} {outside_root(relpath)}"
        if with_corpus and image_id not in corpus:
            return "not_in_corpus", f"{side} image {image_id} is not in the official corpus"
    return None


def gallery_sample(image_id: int, relpath: str, coco: Path) -> SampleSpec:
    return SampleSpec(
        str(image_id),
        ((fields.GALLERY_IMAGE, str(coco / relpath)),),
        None,
        {"id": image_id, "path": relpath},
        {"image_id": image_id, "path": relpath},
    )
