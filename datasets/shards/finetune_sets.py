"""CIRR, CIRCO, FashionIQ, Shoes, Fashion200k, MIT-States as shards in the LaSCo schema (finetuning, eval).

Train/val splits give `triplets/` (query.jpg, target.jpg, txt, json) and `gallery/` (jpg, json,
keyed by image name). Test splits (CIRR test1, CIRCO test, FashionIQ test, Fashion200k test) give `queries/`
(query.jpg, txt, json, no target image) and `gallery/`, so a training loader can never pick them
up by mistake while evaluation still streams them. A Fashion200k test query's json names its target
and the target's description (a hit is any image with that description), its gallery json the
image's description. Shoes' test split (eval_im_names.txt) has targets: `triplets/` + `gallery/`,
like a val split; the triplets its split rule drops are in the error table (reason cross_split or
unlisted_image).

Fashion200k training pairs are drawn as the reference draws them on the fly (coir.datasets.fashion200k:
draw_training_pairs), but once, seeded: `pairs_per_image` passes over the training images, each in
a fresh random order with one draw per image, so one epoch over the shards is that many of the
reference's epochs, each image the reference of a pair that many times (a non-modifiable image's
turn goes to a random modifiable one, as in the reference) with targets drawn independently.
MIT-States training pairs likewise (coir.datasets.mit_states: draw_training_pairs, `mit_states_draw`
other | released); its test split gives `queries/` (json: the target label, "adjective noun", and
one image of it; a hit is any image of that label) and `gallery/` (json: each image's label). The
text is the target adjective or "adjective noun" (`mit_states_text`); Fashion200k's "replace X with Y"
or the target's description (`fashion200k_text`), train and test alike.

`custom` shards a user's JSONL of triplets (coir.datasets.shards.custom_set): `triplets` names the file,
`root` the images folder; its split is only a label.

    report = build_benchmark_shards(config, task_index=i, num_tasks=n)
    report = finalize_benchmark_shards(config.out)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coir.common import fields as shard_fields
from coir.common.config import to_dict
from coir.common.errors import CoirError, ConfigError, MissingInputError
from coir.common.paths import outside_root
from coir.datasets.fashion200k import TEXT_FORMS as FASHION200K_TEXT_FORMS
from coir.datasets.fashion200k import WORD_DELETIONS
from coir.datasets.fashioniq import FASHIONIQ_TEMPLATE, join_fashioniq_captions
from coir.datasets.records import FASHIONIQ_CATEGORIES
from coir.datasets.shards.build import build_sets
from coir.datasets.shards.custom_set import INDEX_COLUMNS as CUSTOM_COLUMNS
from coir.datasets.shards.custom_set import custom_sets
from coir.datasets.shards.encoded_images import remove_all_scratch
from coir.datasets.shards.images import ImageEncoder
from coir.datasets.shards.manifest import finalize_folder
from coir.datasets.shards.spec import SampleSpec, ShardSet, error_record

TEST_SPLITS = ("test1", "test")


@dataclass
class BenchmarkShardsConfig:
    dataset: str = "???"  # cirr | circo | fashioniq | shoes | fashion200k | mit_states | custom
    root: str = (
        "???"  # dataset root (CIRR: captions/, image_splits/, images; Fashion200k: labels/ …; custom: images)
    )
    split: str = (
        "???"  # cirr: train|val|test1; circo: val|test; fashioniq: train|val|test; shoes …: train|test
    )
    out: str = "???"
    triplets: str = ""  # custom only: the JSONL file of triplets (coir.datasets.shards.custom_set)
    categories: list[str] = field(default_factory=lambda: list(FASHIONIQ_CATEGORIES))  # fashioniq only
    resize: str = "shorter"
    size: int = 384
    jpeg_quality: int = 90
    shard_size: int = 1000
    gallery_shard_size: int = 2000
    workers: int = 1
    reuse_images: bool = True  # false: encode every sample's images again (the same bytes)
    fashioniq_template: str = FASHIONIQ_TEMPLATE  # how the two captions become one text (fashioniq only)
    pairs_per_image: int = 4  # fashion200k train: drawn pairs per training image (passes over them)
    seed: int = 0  # fashion200k train: the seed of the draw
    word_deletion: str = (
        "token"  # fashion200k: parents by deleting the word (token) or as released (substring)
    )
    # fashion200k: the text is "replace X with Y" (modification) or the target's description
    fashion200k_text: str = "modification"
    mit_states_text: str = "adjective"  # mit_states: the text is the target adjective or "adjective noun"
    mit_states_draw: str = (
        "other"  # mit_states train: target adjective other than the reference's, or released
    )


def _key(text: str) -> str:
    return text.replace(".", "_").replace("/", "_")


def _cirr_sets(config: BenchmarkShardsConfig) -> tuple[list[SampleSpec], list[SampleSpec], list[dict]]:
    from coir.datasets.cirr import (
        cirr_captions_path,
        cirr_image_path,
        cirr_split_path,
        read_cirr_image_split,
        read_cirr_triplets,
    )

    root, split = Path(config.root), config.split
    triplets = read_cirr_triplets(root, split)
    split_file, captions = cirr_split_path(root, split), cirr_captions_path(root, split)
    images, errors = {}, []
    for index, (name, rel) in enumerate(read_cirr_image_split(root, split).items()):
        reason = outside_root(rel)
        if reason is None:
            images[name] = rel
        else:
            message = f"{split_file}, record {index}: image {name!r} path {rel!r} {reason}"
            errors.append(error_record("gallery", name, str(split_file), "bad_path", message))
    refused = {e["id"] for e in errors}
    samples = []
    for index, t in enumerate(triplets):
        names = [t.reference] + ([t.target_hard] if t.target_hard is not None else [])
        unknown = [n for n in names if n not in images]
        if unknown:
            problem = (
                "its path was refused" if unknown[0] in refused else f"is not in the {split} image split"
            )
            reason = "bad_path" if unknown[0] in refused else "unknown_image"
            message = f"{captions}, record {index}: pair {t.pairid}: image {unknown[0]!r} {problem}"
            errors.append(error_record("triplet", t.pairid, str(captions), reason, message))
            continue
        fields = [(shard_fields.QUERY_IMAGE, str(cirr_image_path(root, images[t.reference])))]
        if t.target_hard is not None:
            fields.append((shard_fields.TARGET_IMAGE, str(cirr_image_path(root, images[t.target_hard]))))
        meta = {
            "pairid": t.pairid,
            "reference": t.reference,
            "target_hard": t.target_hard,
            "target_soft": dict(sorted(t.target_soft.items())),
            "caption": t.caption,
            "img_set": {
                "id": t.img_set.id,
                "members": list(t.img_set.members),
                "reference_rank": t.img_set.reference_rank,
                "target_rank": t.img_set.target_rank,
            },
        }
        row = {
            "pairid": t.pairid,
            "reference": t.reference,
            "target": t.target_hard or "",
            "text": t.caption,
            "img_set_id": t.img_set.id,
        }
        samples.append(SampleSpec(_key(str(t.pairid)), tuple(fields), t.caption, meta, row))
    gallery = [
        SampleSpec(
            _key(name),
            ((shard_fields.GALLERY_IMAGE, str(cirr_image_path(root, rel))),),
            None,
            {"id": name, "path": rel},
            {"image_id": name, "category": "", "path": rel},
        )
        for name, rel in sorted(images.items())
    ]
    return samples, gallery, errors


def _circo_sets(config: BenchmarkShardsConfig) -> tuple[list[SampleSpec], list[SampleSpec], list[dict]]:
    """val: triplets (the reference and target_img_id; the json keeps every ground truth and aspect);
    test: queries; gallery: every image of the COCO 2017 unlabeled image-info file (its order)."""
    from coir.datasets.circo import circo_image_dir, read_circo_gallery, read_circo_queries

    root, split = Path(config.root), config.split
    gallery_images = read_circo_gallery(root)
    files = {im.id: circo_image_dir(root) / im.file_name for im in gallery_images}
    samples, errors = [], []
    for q in read_circo_queries(root, split):
        ids = [q.reference_img_id] + ([q.target_img_id] if q.target_img_id is not None else [])
        unknown = [i for i in ids if i not in files]
        if unknown:
            message = f"query {q.id}: image {unknown[0]} is not in the gallery's image-info file"
            errors.append(error_record("triplet", q.id, str(root), "unknown_image", message))
            continue
        fields = [(shard_fields.QUERY_IMAGE, str(files[q.reference_img_id]))]
        if q.target_img_id is not None:
            fields.append((shard_fields.TARGET_IMAGE, str(files[q.target_img_id])))
        meta = {
            "id": q.id,
            "reference_img_id": q.reference_img_id,
            "target_img_id": q.target_img_id,
            "relative_caption": q.relative_caption,
            "shared_concept": q.shared_concept,
            "gt_img_ids": list(q.gt_img_ids),
            "semantic_aspects": list(q.semantic_aspects),
        }
        row = {
            "id": q.id,
            "reference": str(q.reference_img_id),
            "target": "" if q.target_img_id is None else str(q.target_img_id),
            "text": q.relative_caption,
        }
        samples.append(SampleSpec(str(q.id), tuple(fields), q.relative_caption, meta, row))
    gallery = [
        SampleSpec(
            str(im.id),
            ((shard_fields.GALLERY_IMAGE, str(files[im.id])),),
            None,
            {"id": im.id, "path": im.file_name},
            {"image_id": str(im.id), "category": "", "path": im.file_name},
        )
        for im in gallery_images
    ]
    return samples, gallery, errors


def _fashioniq_sets(config: BenchmarkShardsConfig) -> tuple[list[SampleSpec], list[SampleSpec], list[dict]]:
    from coir.datasets.fashioniq import (
        fashioniq_image_path,
        read_fashioniq_image_split,
        read_fashioniq_triplets,
    )

    root, split = Path(config.root), config.split
    samples, gallery = [], []
    for category in config.categories:
        if category not in FASHIONIQ_CATEGORIES:
            raise ConfigError(f"categories: {category!r} is not one of {', '.join(FASHIONIQ_CATEGORIES)}")
        for i, t in enumerate(read_fashioniq_triplets(root, category, split)):
            fields = [(shard_fields.QUERY_IMAGE, str(fashioniq_image_path(root, t.candidate)))]
            if t.target is not None:
                fields.append((shard_fields.TARGET_IMAGE, str(fashioniq_image_path(root, t.target))))
            text = join_fashioniq_captions(t.captions, config.fashioniq_template)
            meta = {
                "category": category,
                "candidate": t.candidate,
                "target": t.target,
                "captions": list(t.captions),
                "text": text,
            }
            row = {"category": category, "reference": t.candidate, "target": t.target or "", "text": text}
            samples.append(SampleSpec(f"{category}_{i:06d}", tuple(fields), text, meta, row))
        for asin in sorted(set(read_fashioniq_image_split(root, category, split))):
            rel = f"images/{asin}.jpg"
            gallery.append(
                SampleSpec(
                    _key(f"{category}_{asin}"),
                    ((shard_fields.GALLERY_IMAGE, str(fashioniq_image_path(root, asin))),),
                    None,
                    {"id": asin, "category": category, "path": rel},
                    {"image_id": asin, "category": category, "path": rel},
                )
            )
    return samples, gallery, []


def _shoes_sets(config: BenchmarkShardsConfig) -> tuple[list[SampleSpec], list[SampleSpec], list[dict]]:
    """The split's triplets (both images in its list) and every image of its list. Triplets dropped by
    the split rule and images not found below a womens_* folder go to the error table."""
    from coir.datasets.shoes import SPLIT_FILES, locate_shoes_images, read_shoes_split

    root, split = Path(config.root), config.split
    data = read_shoes_split(root, split)
    found, missing = locate_shoes_images(root, data.images)
    errors = [error_record("triplet", d.triplet.index, str(root), d.reason, d.message) for d in data.dropped]
    listed = SPLIT_FILES[split]
    gallery_errors = [
        error_record(
            "gallery", name, str(root), "missing_image", f"{name!r} of {listed} is in no womens_* folder"
        )
        for name in missing
    ]
    samples = []
    for t in data.triplets:
        absent = [n for n in (t.reference, t.target) if n not in found]
        if absent:
            message = f"entry {t.index}: image {absent[0]!r} is in no womens_* folder"
            errors.append(error_record("triplet", t.index, str(root), "missing_image", message))
            continue
        fields = (
            (shard_fields.QUERY_IMAGE, str(found[t.reference])),
            (shard_fields.TARGET_IMAGE, str(found[t.target])),
        )
        meta = {
            "index": t.index,
            "reference": t.reference,
            "target": t.target,
            "caption": t.caption,
            "reference_path": found[t.reference].relative_to(root).as_posix(),
            "target_path": found[t.target].relative_to(root).as_posix(),
        }
        row = {"index": t.index, "reference": t.reference, "target": t.target, "text": t.caption}
        samples.append(SampleSpec(str(t.index), fields, t.caption, meta, row))
    gallery = []
    for name in data.images:
        if name not in found:
            continue
        rel = found[name].relative_to(root).as_posix()
        category = next(p for p in found[name].relative_to(root).parts if p.startswith("womens_"))
        gallery.append(
            SampleSpec(
                _key(name),
                ((shard_fields.GALLERY_IMAGE, str(found[name])),),
                None,
                {"id": name, "category": category, "path": rel},
                {"image_id": name, "category": category, "path": rel},
            )
        )
    return samples, gallery, errors + gallery_errors


def _fashion200k_sets(
    config: BenchmarkShardsConfig,
) -> tuple[list[SampleSpec], list[SampleSpec], list[dict]]:
    from coir.datasets.fashion200k import (
        build_test_queries,
        draw_training_pairs,
        query_text,
        read_fashion200k_images,
        unique_images,
    )

    if config.word_deletion not in WORD_DELETIONS:
        raise ConfigError(
            f"key 'word_deletion': must be one of {', '.join(WORD_DELETIONS)}, got {config.word_deletion!r}"
        )
    if config.fashion200k_text not in FASHION200K_TEXT_FORMS:
        raise ConfigError(
            f"key 'fashion200k_text': must be one of {', '.join(FASHION200K_TEXT_FORMS)}, "
            f"got {config.fashion200k_text!r}"
        )
    root, split = Path(config.root), config.split
    images = read_fashion200k_images(root, split)
    gallery_images = unique_images(root, images, split, strict=split == "test")
    samples = []
    if split == "test":
        category_of = {im.path: im.category for im in gallery_images}
        for i, q in enumerate(build_test_queries(root, gallery_images)):
            text = query_text(q.text, q.target_description, config.fashion200k_text)
            meta = {
                "reference": q.reference,
                "target": q.target,
                "reference_description": q.reference_description,
                "target_description": q.target_description,
                "modification": q.text,
                "text": text,
                "line": q.line,
            }
            row = {
                "category": category_of[q.reference],
                "reference": q.reference,
                "target": q.target,
                "text": text,
            }
            fields = ((shard_fields.QUERY_IMAGE, str(root / q.reference)),)
            samples.append(SampleSpec(f"{i:07d}", fields, text, meta, row))
    else:
        pairs = draw_training_pairs(
            [im.description for im in images], config.pairs_per_image, config.seed, config.word_deletion
        )
        for draw, position, pair in pairs:
            ref, tgt = images[pair.reference], images[pair.target]
            text = query_text(pair.text, tgt.description, config.fashion200k_text)
            meta = {
                "reference": ref.path,
                "target": tgt.path,
                "reference_description": ref.description,
                "target_description": tgt.description,
                "parent": pair.parent,
                "modification": pair.text,
                "text": text,
                "draw": draw,
            }
            row = {"category": ref.category, "reference": ref.path, "target": tgt.path, "text": text}
            fields = (
                (shard_fields.QUERY_IMAGE, str(root / ref.path)),
                (shard_fields.TARGET_IMAGE, str(root / tgt.path)),
            )
            samples.append(SampleSpec(f"{draw:03d}_{position:07d}", fields, text, meta, row))
    gallery = [
        SampleSpec(
            _key(image.path),
            ((shard_fields.GALLERY_IMAGE, str(root / image.path)),),
            None,
            {
                "id": image.path,
                "category": image.category,
                "path": image.path,
                "description": image.description,
            },
            {"image_id": image.path, "category": image.category, "path": image.path},
        )
        for image in gallery_images
    ]
    return samples, gallery, []


def _mit_states_sets(
    config: BenchmarkShardsConfig,
) -> tuple[list[SampleSpec], list[SampleSpec], list[dict]]:
    from coir.datasets.mit_states import (
        DRAWS,
        TEXT_FORMS,
        build_test_queries,
        draw_training_pairs,
        label_images,
        query_text,
        read_mit_states_images,
    )

    for key, value, choices in (
        ("mit_states_text", config.mit_states_text, TEXT_FORMS),
        ("mit_states_draw", config.mit_states_draw, DRAWS),
    ):
        if value not in choices:
            raise ConfigError(f"key {key!r}: must be one of {', '.join(choices)}, got {value!r}")
    root, split = Path(config.root), config.split
    images = read_mit_states_images(root, split)
    samples = []
    if split == "test":
        first_of = {label: indices[0] for label, indices in label_images(images).items()}
        for i, q in enumerate(build_test_queries(images)):
            ref = images[q.reference]
            text = query_text(q.adjective, q.noun, config.mit_states_text)
            meta = {
                "reference": ref.path,
                "reference_label": ref.label,
                "target": images[first_of[q.target_label]].path,
                "target_label": q.target_label,
                "text": text,
            }
            row = {"category": q.noun, "reference": ref.path, "target": meta["target"], "text": text}
            fields = ((shard_fields.QUERY_IMAGE, str(root / ref.path)),)
            samples.append(SampleSpec(f"{i:07d}", fields, text, meta, row))
    else:
        for n, position, pair in draw_training_pairs(
            images, config.pairs_per_image, config.seed, config.mit_states_draw
        ):
            ref, tgt = images[pair.reference], images[pair.target]
            text = query_text(tgt.adjective, tgt.noun, config.mit_states_text)
            meta = {
                "reference": ref.path,
                "target": tgt.path,
                "reference_label": ref.label,
                "target_label": tgt.label,
                "text": text,
                "draw": n,
            }
            row = {"category": ref.noun, "reference": ref.path, "target": tgt.path, "text": text}
            fields = (
                (shard_fields.QUERY_IMAGE, str(root / ref.path)),
                (shard_fields.TARGET_IMAGE, str(root / tgt.path)),
            )
            samples.append(SampleSpec(f"{n:03d}_{position:07d}", fields, text, meta, row))
    gallery = [
        SampleSpec(
            _key(image.path),
            ((shard_fields.GALLERY_IMAGE, str(root / image.path)),),
            None,
            {"id": image.path, "category": image.noun, "path": image.path, "label": image.label},
            {"image_id": image.path, "category": image.noun, "path": image.path},
        )
        for image in images
    ]
    return samples, gallery, []


SetBuilder = Callable[[BenchmarkShardsConfig], tuple[list[SampleSpec], list[SampleSpec], list[dict]]]
# each dataset's (triplets or queries, gallery, error records) of one split
SET_BUILDERS: dict[str, SetBuilder] = {
    "cirr": _cirr_sets,
    "circo": _circo_sets,
    "fashioniq": _fashioniq_sets,
    "shoes": _shoes_sets,
    "fashion200k": _fashion200k_sets,
    "mit_states": _mit_states_sets,
    "custom": custom_sets,
}


def plan_benchmark_shards(config: BenchmarkShardsConfig) -> list[ShardSet]:
    if not Path(config.root).is_dir():
        what = "images folder" if config.dataset == "custom" else f"{config.dataset} root folder"
        raise MissingInputError(config.root, what)
    builder = SET_BUILDERS.get(config.dataset)
    if builder is None:
        raise ConfigError(f"dataset must be one of {', '.join(SET_BUILDERS)}, got {config.dataset!r}")
    samples, gallery, errors = builder(config)
    if not samples:
        raise CoirError(f"{config.root}: no {config.dataset} {config.split} triplets to shard")
    # Shoes' test split has targets; a custom file is what it is, its split only a label
    test = config.split in TEST_SPLITS and config.dataset not in ("shoes", "custom")
    settings = {k: v for k, v in to_dict(config).items() if k not in ("out", "workers", "reuse_images")}
    meta = {
        "dataset": config.dataset,
        "split": config.split,
        "source": config.dataset,
        "config": settings,
        "report": {"triplets": len(samples), "gallery_images": len(gallery), "errors": len(errors)},
    }
    columns = {
        "cirr": (("pairid", "int64"),),
        "circo": (("id", "int64"),),
        "shoes": (("index", "int64"),),
    }.get(config.dataset, (("category", "string"),))
    columns += (("reference", "string"), ("target", "string"), ("text", "string"))
    if config.dataset == "cirr":
        columns += (("img_set_id", "int64"),)
    if config.dataset == "custom":
        columns = CUSTOM_COLUMNS
    out = Path(config.out)
    kind = "queries" if test else "triplets"
    gallery_errors = [e for e in errors if e["kind"] == "gallery"]
    return [
        ShardSet(
            out / kind,
            kind,
            samples,
            config.shard_size,
            columns,
            meta,
            [e for e in errors if e["kind"] != "gallery"],
        ),
        ShardSet(
            out / "gallery",
            "gallery",
            gallery,
            config.gallery_shard_size,
            (("image_id", "string"), ("category", "string"), ("path", "string")),
            meta,
            gallery_errors,
        ),
    ]


def build_benchmark_shards(
    config: BenchmarkShardsConfig, task_index: int = 0, num_tasks: int = 1, progress: bool = True
) -> dict[str, Any]:
    """Write the shards of one task's range (see coir.datasets.lasco.build.build_lasco)."""
    sets = plan_benchmark_shards(config)
    encoder = ImageEncoder(config.resize, config.size, config.jpeg_quality)
    report = build_sets(sets, encoder, task_index, num_tasks, config.workers, config.reuse_images, progress)
    return {"construction": sets[0].meta["report"], **report}


def finalize_benchmark_shards(out_dir: str | Path) -> dict[str, Any]:
    out = Path(out_dir)
    folders = [out / name for name in ("triplets", "queries", "gallery") if (out / name).is_dir()]
    if not folders:
        raise MissingInputError(out / "triplets", "shard folder")
    result: dict[str, Any] = {}
    for folder in folders:
        manifest = finalize_folder(folder)
        result[folder.name] = {
            k: manifest[k] for k in ("num_samples", "num_shards", "num_errors", "errors_by_reason")
        }
        result["construction"] = manifest["report"]
    remove_all_scratch(out)  # every task is done: a scratch folder left is a killed task's
    return result


def summary(out_dir: str | Path) -> dict[str, Any]:
    out = Path(out_dir)
    result: dict[str, Any] = {}
    for path in sorted(out.glob("*/manifest.json")):
        manifest = json.loads(path.read_bytes())
        result[path.parent.name] = {k: manifest[k] for k in ("num_samples", "num_shards", "num_errors")}
    return result
