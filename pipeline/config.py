"""The training config schema (`coir train CONFIG`): a dataclass tree loaded with load_config.

YAML files under configs/pretrain/ and configs/finetune/ follow this schema; every key can be
overridden from the command line as `section.key=value`. Unknown keys and wrong types fail at
load time (ConfigError naming the key); `check_paths` then checks the paths the run needs
(shards, tokenizer, resume and optimizer checkpoints) before any process group or model is built.
"""

from __future__ import annotations

import glob
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coir.common.config import load_config
from coir.common.errors import ConfigError, MissingInputError
from coir.pipeline.augment import AugmentConfig
from coir.pipeline.models.registry import DEFAULT_FAMILY, model_config

INPUTS = ("images", "features")  # what data.shards hold


@dataclass
class DataConfig:
    # Shard tar files: explicit paths, glob patterns, brace patterns ("x-{000000..000009}.tar") or a
    # build folder holding manifest.json (its listed shards are used).
    shards: list[str] = field(default_factory=list)
    # images: the shards hold JPEGs (query.jpg, target.jpg) and the model runs its whole image path;
    # features: shards from `coir data features` (query.npy, target.npy), the outputs of the model's
    # frozen image part, checked against the model's frozen part when training starts
    inputs: str = "images"
    batch_size: int = 32  # per rank and per micro-step
    num_workers: int = 2  # DataLoader worker processes per rank (0: read in the main process)
    shuffle_buffer: int = 1000  # samples held by the per-worker shuffle buffer
    shuffle_initial: int = 100  # samples buffered before the first one is emitted
    samples_per_epoch_per_worker: int = 10000  # epoch length; rounded down to whole batches
    image_mode: str = "RGB"
    # JPEG draft decoding: let libjpeg decode at a reduced scale that is still >= this size (px)
    # before the model's transform resizes; null decodes at full size.
    draft_size: int | None = None
    pin_memory: bool = True  # only takes effect on GPU
    prefetch_factor: int = 2
    # training-time image augmentation (BLIP's retrieval transform_train, composed-retrieval safe flip);
    # off by default; see pipeline/augment.py
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class OptimConfig:
    lr: float = 1e-4
    min_lr: float = 0.0  # the cosine schedule ends here
    weight_decay: float = 0.05  # not applied to biases, norms, embeddings and the temperature
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    warmup_steps: int = 0  # linear warm-up from 0 to lr
    total_steps: int = 1000  # optimizer steps of the run; also the length of the cosine schedule
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    grad_accumulation: int = 1  # micro-steps per optimizer step


@dataclass
class DeepSpeedConfig:
    zero_stage: int = 2  # 0, 1 or 2
    precision: str = "auto"  # auto (bf16 on GPU, fp32 on CPU) | bf16 | fp32


@dataclass
class CheckpointConfig:
    dir: str | None = None  # default: <run_dir>/checkpoints
    every_steps: int = 1000  # 0: only on signals and at the end
    keep_last: int = 3
    resume: str | None = None  # "auto" (newest in dir, if any) | a checkpoint folder | null (fresh)
    # A fresh run's AdamW state (moments and step count) for each trainable parameter of the same name and
    # shape, from a checkpoint folder, or the newest complete one of a checkpoint or run folder (e.g. stage
    # 2 of a two-stage recipe from stage 1's run); other parameters start fresh. Unused when resuming.
    init_optimizer_from: str | None = None
    # Also write the full AdamW state by parameter name (optimizer_by_name.pt) at each save, what a later
    # run's init_optimizer_from reads: on for stage 1 of a two-stage recipe. Off by default: it is a rank-0
    # gather of 8 bytes per trainable parameter (GBs per checkpoint for a BLIP-size model).
    optimizer_by_name: bool = False


@dataclass
class LoggingConfig:
    dir: str | None = None  # default: <run_dir>/logs
    every_steps: int = 10
    tensorboard: bool = True
    progress_bar: bool = True
    log_samples: bool = False  # write the keys and shards each rank consumed (data_rank<r>.jsonl)
    # one device's dense peak in TFLOP/s for MFU (default: the detected GPU's bf16 peak where known,
    # pipeline/throughput.py; on CPU no MFU is reported unless this is set)
    peak_tflops: float | None = None


@dataclass
class ValidationConfig:
    benchmark: str | None = None  # a benchmark of coir.eval's registry (cirr, fashioniq, lasco …)
    data_root: str | None = None
    split: str = "val"
    every_epochs: int = 1
    main_metric: str = "main"  # key of the validator's result that selects the best checkpoint
    # the benchmark's own options, as `coir eval`'s options.<benchmark> (e.g. for an ARTEMIS recipe on
    # FashionIQ: {caption_template: "{c1} <and> {c2}"}); checked before training starts
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainConfig:
    run_dir: str = "runs/train"
    # the model's name in its provenance card, hence in results and submission files (default: the
    # model's own, e.g. case)
    name: str | None = None
    seed: int = 0
    # the model section: `family` selects a family in the model registry and the rest is validated
    # against that family's own config dataclass (load_train_config replaces the mapping by it)
    model: Any = field(default_factory=lambda: {"family": DEFAULT_FAMILY})
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    deepspeed: DeepSpeedConfig = field(default_factory=DeepSpeedConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)

    @property
    def checkpoint_dir(self) -> Path:
        return Path(self.checkpoint.dir) if self.checkpoint.dir else Path(self.run_dir) / "checkpoints"

    @property
    def log_dir(self) -> Path:
        return Path(self.logging.dir) if self.logging.dir else Path(self.run_dir) / "logs"


def load_train_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """YAML + overrides -> a checked TrainConfig (ConfigError / MissingInputError naming the key or path)."""
    config = load_config(TrainConfig, path, list(overrides))
    if not isinstance(config.model, dict):
        raise ConfigError(f"key 'model': expected a mapping of model options, got {config.model!r}")
    config.model = model_config(config.model)
    check_values(config)
    return config


def check_values(config: TrainConfig) -> None:
    """Value ranges the type system cannot express; each error names its key."""

    def need(condition: bool, key: str, message: str) -> None:
        if not condition:
            raise ConfigError(f"key {key!r}: {message}")

    data, optim = config.data, config.optim
    need(data.inputs in INPUTS, "data.inputs", f"must be {' or '.join(INPUTS)}, got {data.inputs!r}")
    need(data.batch_size >= 1, "data.batch_size", "must be >= 1")
    need(data.num_workers >= 0, "data.num_workers", "must be >= 0")
    need(data.shuffle_buffer >= 1, "data.shuffle_buffer", "must be >= 1")
    for key, message in data.augment.problems():
        need(False, f"data.augment.{key}", message)
    need(
        not (data.augment.enabled and data.inputs == "features"),
        "data.augment.enabled",
        "cannot augment data.inputs=features (the features of fixed images); switch one of them off",
    )
    need(
        data.samples_per_epoch_per_worker >= data.batch_size,
        "data.samples_per_epoch_per_worker",
        f"must be at least data.batch_size ({data.batch_size})",
    )
    need(optim.lr > 0, "optim.lr", "must be > 0")
    need(0 <= optim.min_lr <= optim.lr, "optim.min_lr", "must be between 0 and optim.lr")
    need(len(optim.betas) == 2, "optim.betas", "must hold two numbers")
    need(optim.total_steps >= 1, "optim.total_steps", "must be >= 1")
    need(0 <= optim.warmup_steps <= optim.total_steps, "optim.warmup_steps", "must be in [0, total_steps]")
    need(optim.grad_accumulation >= 1, "optim.grad_accumulation", "must be >= 1")
    need(optim.grad_clip >= 0, "optim.grad_clip", "must be >= 0")
    need(config.deepspeed.zero_stage in (0, 1, 2), "deepspeed.zero_stage", "must be 0, 1 or 2")
    need(
        config.deepspeed.precision in ("auto", "bf16", "fp32"),
        "deepspeed.precision",
        "must be auto, bf16 or fp32",
    )
    need(config.checkpoint.every_steps >= 0, "checkpoint.every_steps", "must be >= 0")
    need(config.checkpoint.keep_last >= 1, "checkpoint.keep_last", "must be >= 1")
    need(config.logging.every_steps >= 1, "logging.every_steps", "must be >= 1")
    peak = config.logging.peak_tflops
    need(peak is None or peak > 0, "logging.peak_tflops", "must be > 0 (or null: the detected GPU's peak)")
    need(config.validation.every_epochs >= 1, "validation.every_epochs", "must be >= 1")
    if config.validation.benchmark:
        need(
            bool(config.validation.data_root), "validation.data_root", "is required with validation.benchmark"
        )


def resolve_shards(patterns: list[str]) -> list[str]:
    """Expand data.shards into a sorted list of existing tar files (MissingInputError naming the path)."""
    import braceexpand  # a webdataset dependency

    if not patterns:
        raise ConfigError("key 'data.shards': no shards given (paths, globs or a build folder)")
    shards: list[str] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            shards.extend(_shards_of_folder(path))
            continue
        found: list[str] = []
        for expanded in braceexpand.braceexpand(pattern):
            if glob.has_magic(expanded):
                found.extend(sorted(glob.glob(expanded)))
            elif Path(expanded).is_file():
                found.append(expanded)
            else:
                raise MissingInputError(expanded, "shard (data.shards)")
        if not found:
            raise MissingInputError(pattern, "shards matching (data.shards)")
        shards.extend(found)
    return sorted(dict.fromkeys(shards))


def _shards_of_folder(folder: Path) -> list[str]:
    manifest = folder / "manifest.json"
    if manifest.is_file():
        try:
            listed = json.loads(manifest.read_text()).get("shards", [])
        except (json.JSONDecodeError, AttributeError) as error:
            raise ConfigError(f"key 'data.shards': {manifest} is not a valid manifest: {error}") from error
        names = [_shard_name(entry) for entry in listed]
        paths = [str(folder / name) for name in names if name]
        for path in paths:
            if not Path(path).is_file():
                raise MissingInputError(path, "shard listed in manifest (data.shards)")
        if paths:
            return paths
    paths = sorted(str(p) for p in folder.glob("*.tar"))
    if not paths:
        raise MissingInputError(folder, "folder without .tar shards (data.shards)")
    return paths


def _shard_name(entry: object) -> str:
    if isinstance(entry, dict):
        return str(entry.get("name") or entry.get("path") or entry.get("file") or "")
    return str(entry)


def check_model_paths(model: Any) -> None:
    """The local files the model config names (vocabulary, weights, init_from …) exist."""
    for key, value in model.input_paths().items():
        if value and not Path(value).exists():
            raise MissingInputError(value, f"{key} directory")


def check_paths(config: TrainConfig) -> list[str]:
    """Check every input path before training starts; returns the resolved shard list."""
    shards = resolve_shards(config.data.shards)
    check_model_paths(config.model)
    resume = config.checkpoint.resume
    if resume not in (None, "", "auto") and not Path(resume).is_dir():
        raise MissingInputError(resume, "checkpoint directory (checkpoint.resume)")
    init_optimizer = config.checkpoint.init_optimizer_from
    if init_optimizer and not Path(init_optimizer).is_dir():
        raise MissingInputError(init_optimizer, "checkpoint or run folder (checkpoint.init_optimizer_from)")
    if config.validation.benchmark and not Path(str(config.validation.data_root)).exists():
        raise MissingInputError(str(config.validation.data_root), "validation.data_root")
    return shards
