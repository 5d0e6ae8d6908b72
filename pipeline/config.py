"""The training config schema (`coir train CONFIG`): a dataclass tree loaded with load_config.

YAML files under configs/pretrain/ and configs/finetune/ follow this schema; every key can be
overridden from the command line as `section.key=value`. Unknown keys and wrong types fail at
load time (ConfigError naming the key); `check_paths` then checks the paths the run needs
(shards, tokenizer, resume and optimizer checkpoints) before any process group or model is built.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coir.common.config import load_config
from coir.common.errors import ConfigError, DataFormatError, MissingInputError
from coir.pipeline.augment import AugmentConfig
from coir.pipeline.models.registry import DEFAULT_FAMILY, model_config

INPUTS = ("images", "features")  # what data.shards hold
DECODE_CHOICES = ("host", "device")  # data.decode: where JPEGs are decoded (pipeline/device_decode.py)
IMAGE_MODES = ("RGB", "L")  # decode in colour, or in grey (the model's Processor repeats it over RGB)


@dataclass
class DataConfig:
    # Shard tar files: explicit paths, glob patterns, brace patterns ("x-{000000..000009}.tar") or a
    # build folder holding manifest.json (its listed shards are used; a folder without one, an unfinished
    # build, is refused). Shards a manifest lists are checked against it: size at start, sha256 as read.
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
    # host: DataLoader workers decode the JPEGs; device: JPEGs already at the model's input size travel
    # as bytes and the training step decodes them on its device, batched (nvJPEG on CUDA); others are
    # decoded in the workers as before (pipeline/device_decode.py). Not with data.augment.
    decode: str = "host"
    prefetch_factor: int = 2
    # A worker stops with an error naming the shard once more than this share of what it read (samples
    # and shard reads) failed, judged after its first 100; 1 never stops. A shard that yields no sample at
    # all stops the run whatever this says.
    max_bad_share: float = 0.2
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
class DistributedConfig:
    # a collective (NCCL or gloo) that waits longer fails; must exceed the longest phase in which rank 0
    # works alone while the others wait (a validation, a checkpoint write)
    timeout_s: float = 1800.0
    heartbeat_every_steps: int = 10  # each rank writes <run_dir>/heartbeat/rank<r>.json this often
    # a rank whose training loop has not moved for this long (outside validation and checkpoints) makes
    # the watchdog name the rank(s) that stopped advancing and end the job; 0: no watchdog
    stall_timeout_s: float = 600.0


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
    distributed: DistributedConfig = field(default_factory=DistributedConfig)

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
    need(
        0 <= data.shuffle_initial <= data.shuffle_buffer,
        "data.shuffle_initial",
        f"must be in [0, data.shuffle_buffer ({data.shuffle_buffer})], got {data.shuffle_initial}",
    )
    need(data.prefetch_factor >= 1, "data.prefetch_factor", f"must be >= 1, got {data.prefetch_factor}")
    need(
        data.draft_size is None or data.draft_size >= 1,
        "data.draft_size",
        f"must be >= 1 (pixels) or null, got {data.draft_size}",
    )
    need(
        data.image_mode in IMAGE_MODES,
        "data.image_mode",
        f"must be one of {', '.join(IMAGE_MODES)}, got {data.image_mode!r}",
    )
    need(
        data.decode in DECODE_CHOICES,
        "data.decode",
        f"must be one of {', '.join(DECODE_CHOICES)}, got {data.decode!r}",
    )
    if data.decode == "device":
        need(not data.augment.enabled, "data.decode", "device decoding cannot augment (data.augment.enabled)")
        need(data.inputs == "images", "data.decode", "device decoding is of images, not data.inputs=features")
        need(data.image_mode == "RGB", "data.decode", f"device decoding is RGB, not {data.image_mode}")
    need(
        0 <= data.max_bad_share <= 1,
        "data.max_bad_share",
        f"must be in [0, 1], got {data.max_bad_share}",
    )
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
    need(
        len(optim.betas) == 2 and all(0 <= beta < 1 for beta in optim.betas),
        "optim.betas",
        f"must hold two numbers in [0, 1), got {list(optim.betas)}",
    )
    need(optim.eps > 0, "optim.eps", f"must be > 0, got {optim.eps}")
    need(optim.weight_decay >= 0, "optim.weight_decay", f"must be >= 0, got {optim.weight_decay}")
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
    timing = config.distributed
    need(timing.timeout_s > 0, "distributed.timeout_s", "must be > 0")
    need(timing.heartbeat_every_steps >= 1, "distributed.heartbeat_every_steps", "must be >= 1")
    need(
        0 <= timing.stall_timeout_s < timing.timeout_s,
        "distributed.stall_timeout_s",
        f"must be >= 0 and below distributed.timeout_s ({timing.timeout_s}) so that the watchdog names "
        "the stalled rank before a collective times out",
    )
    if config.validation.benchmark:
        need(
            bool(config.validation.data_root), "validation.data_root", "is required with validation.benchmark"
        )


def resolve_shards(patterns: list[str]) -> list[str]:
    """Expand data.shards into a sorted list of existing tar files, checked against their manifests.

    A folder is a finished build: its manifest.json lists the shards (those with samples are used). A
    folder without one is an unfinished build and is refused (its `*.tar`, listed as a glob, are taken
    as they are). Every shard whose folder's manifest lists it must have the size it lists; the sha256
    is checked as training reads it (pipeline/shard_reader.py). Errors name the key and the folder.
    """
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
    shards = sorted(dict.fromkeys(shards))
    _check_sizes(shards)
    return shards


def listed_shards(folder: Path) -> dict[str, dict[str, Any]] | None:
    """The shards `folder`'s manifest.json lists ({name: {"bytes", "sha256", "samples"}}), or None
    without a manifest; DataFormatError naming the manifest and the entry when one is malformed."""
    from coir.datasets.shards.manifest import read_manifest
    from coir.datasets.shards.spec import MANIFEST

    if not (folder / MANIFEST).is_file():
        return None
    manifest = read_manifest(folder)
    entries = manifest.get("shards")
    if not isinstance(entries, list):
        raise DataFormatError(folder / MANIFEST, "expected a list of shards", field="shards")
    listed = {}
    for index, entry in enumerate(entries):
        valid = (
            isinstance(entry, dict)
            and isinstance(entry.get("name"), str)
            and isinstance(entry.get("bytes"), int)
            and isinstance(entry.get("sha256"), str)
            and isinstance(entry.get("samples"), int)
        )
        if not valid:
            raise DataFormatError(
                folder / MANIFEST, "expected {name, bytes, sha256, samples}", index=index, field="shards"
            )
        listed[entry["name"]] = entry
    return listed


def shard_checksums(shards: list[str]) -> dict[str, str]:
    """sha256 by shard path, for the shards their folder's manifest lists."""
    checksums = {}
    for folder, names in _by_folder(shards).items():
        listed = listed_shards(folder) or {}
        checksums.update({str(folder / n): listed[n]["sha256"] for n in names if n in listed})
    return checksums


def _by_folder(shards: list[str]) -> dict[Path, list[str]]:
    folders: dict[Path, list[str]] = {}
    for shard in shards:
        folders.setdefault(Path(shard).parent, []).append(Path(shard).name)
    return folders


def _shards_of_folder(folder: Path) -> list[str]:
    listed = listed_shards(folder)
    if listed is None:
        tars = list(folder.glob("*.tar"))
        raise ConfigError(
            f"key 'data.shards': {folder} has no manifest.json, so its build did not finish (it holds "
            f"{len(tars)} .tar files): rerun the build command to finish it, or, to train on the shards "
            f"it holds as they are, list them: data.shards=[{folder}/*.tar]"
        )
    paths = [str(folder / name) for name, entry in listed.items() if entry["samples"] > 0]
    if not paths:
        raise ConfigError(f"key 'data.shards': {folder}: its manifest.json lists no shard with samples")
    return paths


def _check_sizes(shards: list[str]) -> None:
    for folder, names in _by_folder(shards).items():
        listed = listed_shards(folder) or {}
        problems = []
        for name in names:
            if name not in listed:
                continue
            path = folder / name
            if not path.is_file():
                problems.append(f"{name} is missing")
            elif path.stat().st_size != listed[name]["bytes"]:
                problems.append(f"{name} has {path.stat().st_size} bytes, not {listed[name]['bytes']}")
        if problems:
            shown = "; ".join(problems[:5]) + (f" and {len(problems) - 5} more" if len(problems) > 5 else "")
            raise ConfigError(
                f"key 'data.shards': {folder} does not match its manifest.json: {shown}. Rebuild the folder "
                f"or restore its files (`coir data inspect {folder}` checks every sha256)"
            )


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
