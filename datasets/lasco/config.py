"""Settings of a LaSCo build (`coir data lasco`): inputs, filters, images, shards, execution.

Loaded with coir.common.config.load_config: defaults here, then an optional YAML file
(`--config`), then the CLI flags, then `--set key=value` overrides. Fields under RUNTIME_FIELDS
change how the build runs, not what it writes, so they stay out of the manifest: a build with
4 workers gives the same bytes as one with 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from coir.common.config import to_dict


@dataclass
class LascoFilters:
    min_agreement: int = 3  # annotators (of 10) whose normalised answer equals the consensus answer
    drop_same_answer: bool = True  # drop pairs whose two answers are equal after normalisation
    answer_types: list[str] = field(default_factory=lambda: ["yes/no", "number", "other"])
    max_text_words: int = 40  # longest modification text kept, in words


@dataclass
class LascoImages:
    # shorter | longest: which side becomes `size` (never enlarged); square: size x size, the training
    # resolution (the loader then decodes straight to uint8, no resize)
    resize: str = "shorter"
    size: int = 384
    jpeg_quality: int = 90


@dataclass
class LascoRephraser:
    kind: str = "rule"  # rule | lm
    model_dir: str | None = None  # local transformers model directory (kind=lm)
    cache_path: str | None = None  # on-disk cache of LM outputs; default <out>/rephrase_cache.jsonl
    batch_size: int = 16


@dataclass
class LascoBuildConfig:
    out: str = "???"
    split: str = "val"  # train | val
    vqa: str | None = None  # folder with the VQA 2.0 json files (construction)
    coco: str = "???"  # COCO root holding train2014/ and val2014/
    from_official: str | None = None  # lasco_{split}.json: shard the published triplets instead
    official_corpus: str | None = None  # lasco_{split}_corpus.json for the gallery (with from_official)
    filters: LascoFilters = field(default_factory=LascoFilters)
    images: LascoImages = field(default_factory=LascoImages)
    rephraser: LascoRephraser = field(default_factory=LascoRephraser)
    shard_size: int = 1000  # samples per shard
    gallery_shard_size: int = 2000
    workers: int = 1
    # false: encode every triplet's images again instead of each distinct image once (the baseline of
    # benchmarks/build_shards.py; the same bytes)
    reuse_images: bool = True


RUNTIME_FIELDS = ("out", "workers", "reuse_images")


def manifest_config(config: LascoBuildConfig) -> dict[str, Any]:
    """The config as recorded in manifests: what determines the output, with input paths kept."""
    data = to_dict(config)
    for name in RUNTIME_FIELDS:
        data.pop(name, None)
    data["rephraser"].pop("cache_path", None)
    return data
