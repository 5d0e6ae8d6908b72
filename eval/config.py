"""The evaluation options: one typed object for `coir eval`, `coir launch eval`, the validators and
the library (configs/zeroshot/*.yaml; every field settable as `key=value`, and as a flag: eval/flags.py).

Options that belong to one benchmark sit under `options.<benchmark>` (e.g.
`options.fashioniq.caption_orders=both`); that benchmark's module (eval/benchmarks/) gives their
schema and checks them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from coir.common.errors import ConfigError

# Working memory of the ranking (scores and masks of one query chunk x gallery chunk block, plus
# what the model's score needs per pair); the chunks are sized from it (ranking.chunk_sizes).
DEFAULT_MEMORY_GB = 1.0
# baselines a family may derive from a checkpoint (FamilySpec.baselines says which it offers); the
# modality-redundancy analysis uses the two single-modality ones
BASELINES = ("image-only", "text-only", "sum")
REDUNDANCY_BASELINES = ("image-only", "text-only")


def option(default: Any, text: str, **flag: Any) -> Any:
    """A config field with the help text of its flag (and argparse extras: choices, metavar)."""
    metadata = {"help": text, **flag}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def _benchmark_names() -> list[str]:
    from coir.eval.benchmarks import benchmark_names

    return benchmark_names()


@dataclass
class EvalConfig:
    checkpoint: str | None = option(None, "exported model directory (coir_model.json + weights)")
    benchmark: str | None = option(None, "the benchmark", choices=_benchmark_names)
    split: str = option(
        "val",
        "split (default val; cirr test1, circo test: checked server files, by default in "
        "<checkpoint>/../eval/)",
    )
    data_root: str | None = option(
        None,
        "benchmark folder (captions/ + image_splits/; CIRCO: annotations/ + COCO2017_unlabeled/; "
        "LaSCo: lasco_val.json)",
        metavar="DIR",
    )
    image_root: str | None = option(
        None,
        "images, if not under the data root (LaSCo: the COCO root; CIRCO: the unlabeled2017 folder)",
        metavar="DIR",
    )
    model_name: str | None = option(
        None, "the model's row in results.json (default: the model's own name: case, artemis, ...)"
    )
    baseline: str | None = option(
        None, "evaluate a baseline derived from the checkpoint (sum: l2n(image + text))", choices=BASELINES
    )
    redundancy: bool = option(False, "also run image-only and text-only: modality redundancy")
    image_only: str | None = option(None, "trained image-only export (default: derived)", metavar="PATH")
    text_only: str | None = option(None, "trained text-only export (default: derived)", metavar="PATH")
    redundancy_k: list[int] = option([1, 10], "cut-offs of the redundancy analysis (default 1,10)")
    mask_reference: bool = option(False, "drop the reference image from its ranking (CIRR always does)")
    query_prompt: str | None = option(
        None,
        "the text each query's caption is put into, {caption} marking where (default: the model's own "
        "for the benchmark, e.g. Pic2Word's 'a photo of * , {caption}' on CIRR; else the caption alone)",
        metavar="TEXT",
    )
    batch_size: int = option(128, "encoding batch size (default 128)")
    device: str | None = option(None, "cpu | cuda | cuda:N (default: cuda when available)")
    num_workers: int = option(2, "image-loading worker processes (default 2)")
    cache: bool = option(True, "cache gallery embeddings on disk per checkpoint and image list")
    cache_dir: str | None = option(
        None, "gallery embedding cache (default $COIR_CACHE_DIR or ~/.cache/coir)", metavar="DIR"
    )
    gallery_part: int = option(
        8192, "gallery images embedded per resumable part of a cached gallery (default 8192)"
    )
    memory_gb: float = option(
        DEFAULT_MEMORY_GB,
        "working memory of the ranking, GiB; sizes its query x gallery chunks (default 1)",
    )
    collective_timeout_s: float = option(
        1800.0, "with several ranks: a collective that waits longer fails (default 1800)", metavar="S"
    )
    pictures: bool = option(True, "write the retrieval PNG grid and HTML page")
    out: str | None = option(
        None, "report folder: results.json (merged), results.md, pictures, submissions", metavar="DIR"
    )
    results: str | None = option(
        None, "results.json to merge into (default: <out>/results.json)", metavar="FILE"
    )
    # {benchmark: {option: value}}, typed and checked by that benchmark's module
    options: dict[str, dict[str, Any]] = option({}, "per-benchmark options")


def eval_device(config: EvalConfig) -> str:
    """The config's device; None: cuda when available, else cpu."""
    if config.device:
        return config.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def check_eval_config(config: EvalConfig) -> None:
    """Value checks the types cannot express, then the benchmark's own (split, its options)."""
    from coir.eval.benchmarks import benchmark_names, get_benchmark

    for key in ("benchmark", "data_root"):
        if getattr(config, key) is None:
            flag = "--" + key.replace("_", "-")
            raise ConfigError(f"key {key!r} is required (give {flag} or set it in the config file)")
    for name in config.options:
        if name not in benchmark_names():
            raise ConfigError(
                f"key 'options.{name}': no benchmark {name!r} (registered: {', '.join(benchmark_names())})"
            )
        get_benchmark(name).options(config)
    if config.baseline not in (None, *BASELINES):
        raise ConfigError(f"key 'baseline': must be one of {', '.join(BASELINES)}, got {config.baseline!r}")
    if config.batch_size < 1 or config.num_workers < 0 or config.gallery_part < 1:
        raise ConfigError("key 'batch_size' and 'gallery_part' must be >= 1, 'num_workers' >= 0")
    if not config.collective_timeout_s > 0:
        raise ConfigError(f"key 'collective_timeout_s': must be > 0, got {config.collective_timeout_s}")
    if config.query_prompt is not None:
        from coir.pipeline.models.base import check_prompt

        check_prompt(config.query_prompt, "query_prompt")
    if not config.memory_gb > 0:
        raise ConfigError(f"key 'memory_gb': must be > 0, got {config.memory_gb}")
    if not config.redundancy_k or min(config.redundancy_k) < 1:
        raise ConfigError(f"key 'redundancy_k': cut-offs must be >= 1, got {config.redundancy_k}")
    if config.benchmark not in benchmark_names():
        raise ConfigError(
            f"key 'benchmark': must be one of {', '.join(benchmark_names())}, got {config.benchmark!r}"
        )
    get_benchmark(config.benchmark).check(config)
