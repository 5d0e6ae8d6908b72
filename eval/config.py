"""The evaluation config schema: configs/zeroshot/*.yaml, overridable as `key=value` and by flags."""

from __future__ import annotations

from dataclasses import dataclass, field

from coir.common.errors import ConfigError
from coir.datasets.fashioniq import FASHIONIQ_TEMPLATE
from coir.datasets.records import FASHIONIQ_CATEGORIES

# Working memory of the ranking (scores and masks of one query chunk x gallery chunk block, plus
# what the model's score needs per pair); the chunks are sized from it (ranking.chunk_sizes).
DEFAULT_MEMORY_GB = 1.0


@dataclass
class EvalConfig:
    checkpoint: str | None = None  # exported model directory (coir_model.json + model.safetensors)
    benchmark: str | None = None  # cirr | fashioniq | lasco
    split: str = "val"
    data_root: str | None = None  # benchmark folder (captions/, image_splits/; LaSCo: lasco_val.json)
    image_root: str | None = None  # images, when not under data_root (LaSCo: the COCO root)
    model_name: str = "case"  # the model's row in results.json
    baseline: str | None = None  # evaluate image-only | text-only derived from the checkpoint
    redundancy: bool = False  # also run image-only and text-only: modality-redundancy analysis
    image_only: str | None = None  # a trained image-only export (default: derived)
    text_only: str | None = None  # a trained text-only export (default: derived)
    redundancy_k: list[int] = field(default_factory=lambda: [1, 10])
    categories: list[str] = field(default_factory=lambda: list(FASHIONIQ_CATEGORIES))
    caption_template: str = FASHIONIQ_TEMPLATE  # FashionIQ: how the two captions are joined
    mask_reference: bool = False  # FashionIQ / LaSCo (CIRR always removes the reference)
    batch_size: int = 128
    device: str | None = None  # default: cuda when available
    num_workers: int = 2
    cache: bool = True  # gallery embeddings cached on disk per checkpoint and image list
    cache_dir: str | None = None  # default: $COIR_CACHE_DIR or ~/.cache/coir/gallery
    memory_gb: float = DEFAULT_MEMORY_GB  # ranking working memory; sizes the query x gallery chunks
    pictures: bool = True
    out: str | None = None  # report folder
    results: str | None = None  # results.json to merge into (default: <out>/results.json)


def check_eval_config(config: EvalConfig) -> None:
    for key in ("checkpoint", "benchmark", "data_root"):
        if getattr(config, key) is None:
            flag = "--" + key.replace("_", "-")
            raise ConfigError(f"key {key!r} is required (give {flag} or set it in the config file)")
    if config.benchmark not in ("cirr", "fashioniq", "lasco"):
        raise ConfigError(f"key 'benchmark': must be cirr, fashioniq or lasco, got {config.benchmark!r}")
    if config.baseline not in (None, "image-only", "text-only"):
        raise ConfigError(f"key 'baseline': must be image-only or text-only, got {config.baseline!r}")
    if config.batch_size < 1 or config.num_workers < 0:
        raise ConfigError("key 'batch_size' must be >= 1, 'num_workers' >= 0")
    if not config.memory_gb > 0:
        raise ConfigError(f"key 'memory_gb': must be > 0, got {config.memory_gb}")
    if not config.redundancy_k or min(config.redundancy_k) < 1:
        raise ConfigError(f"key 'redundancy_k': cut-offs must be >= 1, got {config.redundancy_k}")
