"""The training engine: `train(config) -> result`, the same code for one process, torchrun, the deepspeed
launcher, SLURM and submitit (pipeline/distributed.py finds the ranks).

DeepSpeed runs the model (ZeRO stage 0/1/2 from the config; bf16 on GPU, fp32 on CPU with gloo) with a
torch AdamW built here (weight decay only on matrices: biases, norms, embeddings and the temperature are
excluded) and a warm-up + cosine schedule passed in, so DeepSpeed compiles no ops of its own. Gradient
clipping and accumulation are set explicitly in the DeepSpeed config. Batches go through the DeepSpeed
engine's forward (RetrievalModel.forward == loss), which resets ZeRO's per-step hook state, registers the
backward prologue and applies DeepSpeed's autocast when configured.

Checkpoints (pipeline/checkpoint.py) are written every `checkpoint.every_steps` optimizer steps, at the
end, and when SIGUSR2 or SIGTERM arrives: the handler only sets a flag; at the next step boundary, right
after a validation and when a new epoch's reader has started, the ranks agree through an all_reduce, save
together, and train() returns status "preempted" so that the launcher can requeue with resume=auto. A
fresh run refuses a checkpoint dir that already holds complete checkpoints. The data stream resumes
exactly (see pipeline/data.py). A fresh run with `checkpoint.init_optimizer_from` takes the AdamW state of
each trainable parameter from another run's checkpoint by name (pipeline/optimizer_state.py).
With `validation.benchmark` set, that benchmark's validator (find_validator) runs every
`validation.every_epochs` epochs on rank 0 and the best model (by `validation.main_metric`) is exported
to <run_dir>/best/. The final model is exported to <run_dir>/export/ (safetensors + config + tokenizer).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from coir.common.errors import ConfigError
from coir.pipeline import checkpoint, distributed, optimizer_state
from coir.pipeline.config import TrainConfig, check_paths, check_values
from coir.pipeline.throughput import detect_peak_tflops, format_throughput
from coir.pipeline.watchdog import Watchdog

log = logging.getLogger("coir.train")

NO_DECAY_MODULES = ("Embedding", "LayerNorm", "GroupNorm", "BatchNorm", "RMSNorm")
NO_DECAY_NAMES = ("embedding", "temp", "logit_scale", "cls_token", "bias")
STEP_DELAY_ENV = "COIR_TRAIN_STEP_DELAY"  # tests only: seconds to sleep after each step


class WarmupCosine:
    """LR factor: linear warm-up over `warmup` steps, then cosine from 1 down to min_ratio at `total`."""

    def __init__(self, warmup: int, total: int, min_ratio: float) -> None:
        self.warmup, self.total, self.min_ratio = warmup, total, min_ratio

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / (self.warmup + 1)
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def param_groups(
    model: Any, weight_decay: float, steps: Mapping[str, float] | None = None
) -> list[dict[str, Any]]:
    """AdamW groups: decayed matrices and everything else (biases, norms, embeddings, temperature), each
    split by the AdamW step count `steps` carries over per parameter name (absent: 0, fresh) so that a
    group's parameters share one count, as DeepSpeed's flattened groups require. Each group also lists
    its parameters' "names"."""
    steps = steps or {}
    split: dict[tuple[bool, float], list[tuple[str, Any]]] = {}
    for module_name, module in model.named_modules():
        kind = type(module).__name__
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            full = f"{module_name}.{name}" if module_name else name
            excluded = (
                param.ndim < 2
                or any(tag in kind for tag in NO_DECAY_MODULES)
                or any(tag in name.lower() for tag in NO_DECAY_NAMES)
            )
            split.setdefault((excluded, steps.get(full, 0.0)), []).append((full, param))
    return [
        {
            "params": [p for _, p in named],
            "weight_decay": 0.0 if excluded else weight_decay,
            "names": [n for n, _ in named],
        }
        for (excluded, _), named in sorted(split.items(), key=lambda item: item[0])
    ]


def deepspeed_config(config: TrainConfig, world_size: int, bf16: bool) -> dict[str, Any]:
    micro, accum = config.data.batch_size, config.optim.grad_accumulation
    return {
        "train_micro_batch_size_per_gpu": micro,
        "gradient_accumulation_steps": accum,
        "train_batch_size": micro * accum * world_size,
        "gradient_clipping": config.optim.grad_clip,
        "zero_optimization": {"stage": config.deepspeed.zero_stage},
        "bf16": {"enabled": bf16},
        "fp16": {"enabled": False},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def find_validator(config: TrainConfig) -> Callable[..., dict[str, float]] | None:
    """validate(model, data_root, split, device) for `validation.benchmark`, from coir.eval's benchmark
    registry, reached through the "coir.validation" entry point `validator_for` (no import of eval here)."""
    name = config.validation.benchmark
    if not name:
        return None
    from importlib.metadata import entry_points

    found = {ep.name: ep for ep in entry_points(group="coir.validation")}
    if "validator_for" not in found:
        raise ConfigError(
            "key 'validation.benchmark': no 'validator_for' in the 'coir.validation' entry points "
            "(is coir installed with `pip install -e .`?)"
        )
    try:
        validator_for = found["validator_for"].load()
    except (ImportError, AttributeError) as error:
        raise ConfigError(
            f"key 'validation.benchmark': {found['validator_for'].value} cannot be loaded: {error}"
        ) from error
    return validator_for(name, dict(config.validation.options), config.validation.split)


class _StopFlag:
    """Set by SIGUSR2/SIGTERM; read at step boundaries."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGUSR2, signal.SIGTERM):
            self.previous[signum] = signal.signal(signum, self._handle)

    def _handle(self, signum: int, _frame: Any) -> None:
        self.signum = signum

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def _seed_all(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _timed(what: str, since: float) -> float:
    now = time.perf_counter()
    log.info("%s took %.1f s", what, now - since)
    return now


def train(config: TrainConfig) -> dict[str, Any]:
    """Train as configured; returns {"status": "completed"|"preempted", "step", "samples_seen",
    "export_dir", "checkpoint", "best", "skipped_samples", "skipped_by_shard", "throughput"}. Collective:
    every rank calls it."""
    check_values(config)
    shards = check_paths(config)
    checkpoint.refuse_fresh_start_over(config.checkpoint.resume, config.checkpoint_dir)
    validator = find_validator(config)

    import torch

    use_cuda = torch.cuda.is_available()
    with distributed.process_group(use_cuda, config.distributed.timeout_s) as dist_env:
        return _Trainer(config, shards, validator, dist_env, use_cuda).run()


class _Trainer:
    def __init__(
        self,
        config: TrainConfig,
        shards: list[str],
        validator: Callable[..., dict[str, float]] | None,
        dist_env: distributed.DistEnv,
        use_cuda: bool,
    ) -> None:
        import torch

        self.config = config
        self.shards = shards
        self.validator = validator
        self.rank = dist_env.rank
        self.world = dist_env.world_size
        self.use_cuda = use_cuda
        self.device = f"cuda:{torch.cuda.current_device()}" if use_cuda else "cpu"
        precision = config.deepspeed.precision
        self.bf16 = precision == "bf16" or (precision == "auto" and use_cuda)
        self.run_dir = Path(config.run_dir)
        self.ckpt_dir = config.checkpoint_dir
        self.stop = _StopFlag()

    # -- set-up ---------------------------------------------------------------------------------
    def _build(self) -> None:
        import deepspeed
        import torch

        from coir.pipeline.data import check_samples
        from coir.pipeline.device_decode import decodes_on_device
        from coir.pipeline.features import check_inputs
        from coir.pipeline.models.registry import build_model

        config = self.config
        _seed_all(config.seed)  # identical initial weights on every rank
        model = build_model(config.model)
        self.samples = model.training_samples
        check_samples(self.shards, self.samples, config.data)  # triplets, or single images
        check_inputs(self.shards, model, config.data.inputs)  # images, or this model's frozen features
        self.model_name = config.name or model.name
        self.card_base = self._card_base() if self.rank == 0 else None
        self.processor = model.processor()
        if config.data.decode == "device" and not decodes_on_device(self.processor) and self.rank == 0:
            log.warning(
                "data.decode=device has no effect for this model: its processor resizes even images at its "
                "input size, so every image is decoded in the DataLoader workers"
            )
        self.resumed_from = checkpoint.resolve_resume(config.checkpoint.resume, self.ckpt_dir)
        source = self._optimizer_source(model)
        self.groups = param_groups(model, config.optim.weight_decay, self.carried_steps)
        optimizer = torch.optim.AdamW(
            [{k: v for k, v in g.items() if k != "names"} for g in self.groups],
            lr=config.optim.lr,
            betas=(config.optim.betas[0], config.optim.betas[1]),
            eps=config.optim.eps,
        )
        schedule = WarmupCosine(
            config.optim.warmup_steps, config.optim.total_steps, config.optim.min_lr / config.optim.lr
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        # DeepSpeed's initial weight broadcast views each parameter as bytes and its fp32 gradient
        # clipping scales gradients in place by a [1]-shaped factor: both fail on 0-dim parameters
        scalars = [name for name, p in model.named_parameters() if p.ndim == 0]
        if scalars:
            raise ValueError(
                f"model.name={config.model.name}: 0-dim parameters {scalars} are not supported by "
                "DeepSpeed; give them shape [1]"
            )
        self.engine, _, _, self.scheduler = deepspeed.initialize(
            model=model,
            optimizer=optimizer,
            lr_scheduler=scheduler,
            config=deepspeed_config(config, self.world, self.bf16),
            dist_init_required=False,
        )
        if source is not None:
            file, state = source
            carried = optimizer_state.seed(self.engine, self.groups, self.carried_steps, state)
            log.info(carried.message(file))

    def _optimizer_source(self, model: Any) -> tuple[Path, dict[str, Any]] | None:
        """Sets self.carried_steps ({name: AdamW step} of the parameters whose state a fresh run takes from
        checkpoint.init_optimizer_from, or that the resumed run took); returns (file, state) to seed from."""
        if self.resumed_from is not None:
            # the groups must be those the checkpoint was written with
            state = json.loads((self.resumed_from / checkpoint.MARKER).read_text())
            self.carried_steps = state.get("carried_steps", {})
            return None
        self.carried_steps = {}
        if not self.config.checkpoint.init_optimizer_from:
            return None
        file, state = optimizer_state.load(self.config.checkpoint.init_optimizer_from)
        self.carried_steps = optimizer_state.carried_steps(model, state, file)
        return file, state

    def _restore(self) -> None:
        from coir.pipeline.data import StreamState

        config = self.config
        workers = max(1, config.data.num_workers)
        self.step, self.samples_seen, self.best, self.validated_step = 0, 0, None, 0
        self.stream = StreamState.fresh(workers, self.world)
        if self.resumed_from is None:
            _seed_all(config.seed * 1000 + self.rank + 1)  # per-rank randomness (dropout)
            return
        state, rank_state = checkpoint.load(self.engine, self.resumed_from, self.rank)
        self.step = int(state["step"])
        self.samples_seen = int(state["samples_seen"])
        self.best = state.get("best")
        self.validated_step = int(state.get("validated_step", 0))
        if (
            rank_state is None
            or rank_state["stream"]["num_workers"] != workers
            or state["world_size"] != self.world
        ):
            log.warning(
                "checkpoint %s was written with another world size or worker count: "
                "the data stream restarts with a new epoch",
                self.resumed_from,
            )
            self.stream.epoch = int(state.get("epoch", 0)) + 1
            _seed_all(config.seed * 1000 + self.rank + 1 + self.step)
            return
        self.stream = StreamState(**rank_state["stream"])
        checkpoint.set_rng_state(rank_state["rng"])

    # -- checkpoints and exports ----------------------------------------------------------------
    def _card_base(self) -> dict[str, Any]:
        """The provenance card's parts fixed for the run: config, code, weight / tokenizer sources, data."""
        import dataclasses

        from coir.pipeline.card import build_card

        config = self.config
        sources = dict(config.model.input_paths())
        sources["checkpoint.init_optimizer_from"] = config.checkpoint.init_optimizer_from
        return build_card(
            kind="run",
            model_name=self.model_name,
            config=dataclasses.asdict(config),
            sources=sources,
            shards=self.shards,
        )

    def _card(self, kind: str) -> dict[str, Any] | None:
        if self.card_base is None:
            return None
        training = {k: v for k, v in self._trainer_state().items() if k != "carried_steps"}
        resumed = str(self.resumed_from) if self.resumed_from is not None else None
        return self.card_base | {"kind": kind, "training": training | {"resumed_from": resumed}}

    def _trainer_state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "samples_seen": self.samples_seen,
            "epoch": self.stream.epoch,
            "world_size": self.world,
            "best": self.best,
            "validated_step": self.validated_step,
            "carried_steps": self.carried_steps,
        }

    def _save(self) -> Path:
        with self.watchdog.paused():  # rank 0 may write alone (optimizer_by_name) while the others wait
            return self._save_now()

    def _save_now(self) -> Path:
        import dataclasses

        rank_state = {"rng": checkpoint.rng_state(), "stream": dataclasses.asdict(self.stream)}
        path = checkpoint.save(
            self.engine,
            self.ckpt_dir,
            self.step,
            self._trainer_state(),
            rank_state,
            self.rank,
            self.config.checkpoint.keep_last,
            self._card("checkpoint"),
            (
                optimizer_state.gather(self.engine, self.groups, keep=self.rank == 0)
                if self.config.checkpoint.optimizer_by_name
                else None
            ),
        )
        self.last_saved = self.step
        self.saved_state = self._resume_state()
        self.logger.message(f"checkpoint step {self.step}: {path}")
        return path

    def _resume_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """What a checkpoint written now would resume (weights only change with the step)."""
        import dataclasses

        return self._trainer_state(), dataclasses.asdict(self.stream)

    def _stop_requested(self) -> bool:
        return distributed.all_agree(self.stop.signum is not None)

    def _preempt(self, where: str) -> str:
        """Checkpoint (unless the newest one already holds exactly this state) and stop."""
        if self.last_saved != self.step or self.saved_state != self._resume_state():
            self._save()
        self.logger.message(f"stopping at step {self.step} on a signal ({where}): checkpoint saved")
        return "preempted"

    def _export(self, out_dir: Path) -> None:
        from coir.pipeline.models.export import save_export

        with self.watchdog.paused():
            if self.rank == 0:
                save_export(self.engine.module, out_dir, card=self._card("export"))
            distributed.barrier()

    def _validate(self) -> None:
        if self.validator is None:
            return
        with self.watchdog.paused():  # rank 0 validates alone; the others wait in the broadcast
            self._validate_now()

    def _validate_now(self) -> None:
        import torch

        config = self.config
        if self.rank == 0:
            module = self.engine.module
            module.eval()
            # bf16 weights: autocast lets the validator feed float32 images and keep its own code
            device_type = "cuda" if self.use_cuda else "cpu"
            autocast = torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.bf16)
            with torch.no_grad(), autocast:
                metrics = self.validator(
                    module,
                    str(config.validation.data_root),
                    config.validation.split,
                    torch.device(self.device),
                )
            module.train()
            key = config.validation.main_metric
            if key not in metrics:
                raise ConfigError(
                    f"key 'validation.main_metric': {key!r} not in the validator's result "
                    f"({', '.join(metrics)})"
                )
            score = float(metrics[key])
            record = {
                "step": self.step,
                "epoch": self.stream.epoch,
                **{f"val/{k}": float(v) for k, v in metrics.items()},
            }
            self.logger.record(record)
            if self.best is None or score > self.best["score"]:
                self.best = {"score": score, "step": self.step, "epoch": self.stream.epoch}
                from coir.pipeline.models.export import save_export

                save_export(module, self.run_dir / "best", card=self._card("export"))
            self.logger.message(f"validation epoch {self.stream.epoch}: {key}={score:.4f} (best {self.best})")
        best = [self.best] if self.rank == 0 else [None]
        if self.world > 1:
            import torch.distributed as dist

            dist.broadcast_object_list(best, src=0)
        self.best = best[0]
        self.validated_step = self.step

    # -- the loop -------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        from coir.pipeline.train_log import TrainLogger

        started = time.perf_counter()
        self._build()
        started = _timed("model and DeepSpeed set-up", started)
        self._restore()
        _timed("checkpoint restore", started)
        self.last_saved = self.step if self.resumed_from is not None else -1
        self.peak_tflops = self.config.logging.peak_tflops or detect_peak_tflops(torch.device(self.device))
        self.flops_per_sample: float | None = None  # counted on the first batch (_count_flops)
        self.run_window = _Window()  # the whole run's timings, for the summary
        self.saved_state = self._resume_state() if self.resumed_from is not None else None
        config = self.config
        self.logger = TrainLogger(
            config.log_dir,
            self.rank,
            config.logging.tensorboard,
            config.logging.progress_bar,
            config.optim.total_steps,
            self.step,
            config.logging.log_samples,
        )
        self.watchdog = Watchdog(
            self.run_dir,
            self.rank,
            self.world,
            config.distributed.heartbeat_every_steps,
            config.distributed.stall_timeout_s,
        )
        if self.resumed_from is not None:
            self.logger.message(f"resumed from {self.resumed_from} at step {self.step}")
        if len(self.shards) < self.world * max(1, config.data.num_workers):
            self.logger.message(
                f"warning: {len(self.shards)} shards for {self.world} ranks x {config.data.num_workers} "
                "workers: some readers share shards (still differently shuffled); more shards than "
                "readers give disjoint streams"
            )
        self.stop.install()
        try:
            with self.watchdog:
                status = self._loop()
            result_checkpoint = None
            if self.last_saved != self.step:
                result_checkpoint = str(self._save())
            elif checkpoint.newest(self.ckpt_dir) is not None:
                result_checkpoint = str(checkpoint.newest(self.ckpt_dir))
            export_dir = None
            if status == "completed":
                if self.validator is not None and self.validated_step != self.step:
                    self._validate()
                export_dir = str(self.run_dir / "export")
                self._export(Path(export_dir))
            summary = self._throughput(self.run_window.reduce())
            self.logger.message("throughput: " + format_throughput(summary))
            return {
                "status": status,
                "step": self.step,
                "samples_seen": self.samples_seen,
                "export_dir": export_dir,
                "checkpoint": result_checkpoint,
                "best": self.best,
                "skipped_samples": self._skipped_total(),
                "skipped_by_shard": self._skipped_by_shard(),
                "throughput": summary,
            }
        finally:
            self.stop.restore()
            self.logger.close()

    def _skipped_total(self) -> int:
        return int(distributed.all_reduce_sum([float(self.stream.bad_total)])[0])

    def _skipped_by_shard(self) -> dict[str, int]:
        """Skipped samples and unreadable reads of the whole run by shard, over all ranks; logged."""
        from collections import Counter

        counts = [self.stream.skips_by_shard()]
        if self.world > 1:
            import torch.distributed as dist

            counts = [{} for _ in range(self.world)]
            dist.all_gather_object(counts, self.stream.skips_by_shard())
        total: Counter[str] = Counter()
        for rank_counts in counts:
            total.update(rank_counts)
        if total:
            shown = ", ".join(f"{shard}: {count}" for shard, count in total.most_common(10))
            self.logger.message(f"skipped samples or unreadable shard data by shard: {shown}")
        return dict(sorted(total.items()))

    def _loop(self) -> str:
        import torch

        from coir.pipeline.data import TrainStream, make_loader, open_batches, split_batch
        from coir.pipeline.models.pixels import to_model_inputs

        config = self.config
        accum, total = config.optim.grad_accumulation, config.optim.total_steps
        global_batch = config.data.batch_size * accum * self.world
        delay = float(os.environ.get(STEP_DELAY_ENV, "0") or 0)
        dtype = torch.bfloat16 if self.bf16 else None
        self.engine.module.train()
        window = _Window()
        micro = 0
        watch = self.watchdog
        while self.step < total:
            watch.progress(self.stream.epoch, self.step, "start")
            stream = TrainStream(
                self.shards,
                self.processor,
                config.data,
                config.seed,
                self.rank,
                self.world,
                self.stream,
                self.samples,
            )
            loader = make_loader(stream, config.data, config.seed, self.use_cuda)
            with open_batches(loader) as batches:
                # e.g. arrived while the readers started; mid-accumulation (an epoch that ends inside
                # an optimizer step) the signal waits for the step boundary, or the accumulated
                # gradients are lost
                watch.progress(self.stream.epoch, self.step, "sync")
                if micro == 0 and self._stop_requested():
                    return self._preempt(f"start of epoch {self.stream.epoch}")
                while self.step < total:
                    started = time.perf_counter()
                    watch.progress(self.stream.epoch, self.step, "data", micro)
                    try:
                        batch = next(batches)
                    except StopIteration:
                        break
                    watch.progress(self.stream.epoch, self.step, "compute", micro)
                    waited = time.perf_counter() - started
                    inputs, meta = split_batch(batch)
                    # uint8 images -> normalised floats here, on the device, batched
                    inputs = to_model_inputs(inputs, self.processor, self.device, dtype)
                    if self.flops_per_sample is None:
                        started += self._count_flops(inputs, window)
                    losses = self._micro_step(inputs)
                    self.stream.consumed(meta)
                    self.logger.samples(self.step + 1, meta["_keys"], meta["_shards"])
                    elapsed = time.perf_counter() - started
                    for accumulator in (window, self.run_window):
                        accumulator.add(losses, waited, elapsed, len(meta["_keys"]))
                    micro += 1
                    if micro < accum:
                        continue
                    micro = 0
                    self.step += 1
                    self.samples_seen += global_batch
                    self._after_step(window)
                    watch.beat(self.stream.epoch, self.step)
                    if delay:
                        time.sleep(delay)
                    if self._stop_requested():
                        return self._preempt("step boundary")
                    every = config.checkpoint.every_steps
                    if every and self.step % every == 0 and self.step < total:
                        self._save()
                else:
                    break  # total reached in the middle of an epoch
            self.stream.next_epoch()
            every = config.validation.every_epochs
            if self.validator is not None and self.stream.epoch % every == 0:
                self._validate()  # rank 0 only, may take minutes: a signal may arrive meanwhile
                if micro == 0 and self._stop_requested():
                    return self._preempt(f"after validation of epoch {self.stream.epoch}")
        return "completed"

    def _micro_step(self, inputs: dict[str, torch.Tensor]) -> dict[str, Any]:
        """Forward through the DeepSpeed engine, backward, step (an optimizer step at the accumulation
        boundary). Returns the model's loss dict."""
        losses = self.engine(inputs)
        self.engine.backward(losses["loss"])
        self.engine.step()
        return losses

    def _count_flops(self, inputs: dict[str, torch.Tensor], window: _Window) -> float:
        """Count the training step's FLOPs per sample on this first batch (every rank together; it
        changes neither the weights, the RNG nor the buffers); returns the seconds it took, which the
        timings leave out."""
        from coir.pipeline.throughput import step_flops_per_sample

        began = time.perf_counter()
        self.flops_per_sample = step_flops_per_sample(self.engine.module, inputs)
        took = time.perf_counter() - began
        for accumulator in (window, self.run_window):
            accumulator.started += took
        return took

    def _throughput(self, reduced: dict[str, float]) -> dict[str, Any]:
        """samples/s, data-wait share, FLOPs, MFU and peak memory (the largest over ranks) of a reduced
        window (_Window.reduce)."""
        from coir.pipeline.throughput import peak_device_memory_gib, peak_host_memory_gib, throughput_fields

        record = {k: reduced[k] for k in ("samples_per_s", "data_wait_share")}
        record.update(
            throughput_fields(record["samples_per_s"], self.world, self.flops_per_sample, self.peak_tflops)
        )
        device_memory = peak_device_memory_gib(torch.device(self.device))
        host, device = distributed.all_reduce_max([peak_host_memory_gib(), device_memory or 0.0])
        record["peak_host_memory_gib"] = host
        if device_memory is not None:
            record["peak_device_memory_gib"] = device
        return record

    def _after_step(self, window: _Window) -> None:
        config = self.config
        lr = float(self.scheduler.base_lrs[0] * self.scheduler.lr_lambdas[0](self.step - 1))  # this step's
        self.logger.step(self.step)
        if self.step % config.logging.every_steps and self.step != config.optim.total_steps:
            return
        record = window.reduce()
        record.update(self._throughput(record))
        record.update(
            step=self.step,
            epoch=self.stream.epoch,
            samples_seen=self.samples_seen,
            lr=lr,
            skipped_samples=self._skipped_total(),
        )
        self.logger.record(record)
        self.logger.postfix(record)
        window.reset()


class _Window:
    """Loss terms and timings since the last log record."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0
        self.wait = 0.0
        self.busy = 0.0
        self.samples = 0
        self.started = time.perf_counter()

    def add(self, losses: dict[str, Any], waited: float, elapsed: float, samples: int) -> None:
        # summed as device tensors: no host sync per step; converted at log time
        for key, value in losses.items():
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                value = value.detach().float().reshape(())
                self.sums[key] = self.sums[key] + value if key in self.sums else value
        self.count += 1
        self.wait += waited
        self.busy += elapsed
        self.samples += samples

    def reduce(self) -> dict[str, float]:
        """Averages over all ranks: loss terms, samples/s (global), data-wait share."""
        keys = sorted(self.sums)
        elapsed = time.perf_counter() - self.started
        values = [float(self.sums[k]) for k in keys] + [
            float(self.count),
            self.wait,
            self.busy,
            float(self.samples),
            elapsed,
        ]
        summed = distributed.all_reduce_sum(values)
        world = distributed_world()
        count = max(1.0, summed[len(keys)])
        wait, busy, samples, elapsed_sum = summed[len(keys) + 1 :]
        record = {k: summed[i] / count for i, k in enumerate(keys)}
        record["samples_per_s"] = samples / max(1e-9, elapsed_sum / world)
        record["data_wait_share"] = wait / max(1e-9, busy)
        return record


def distributed_world() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_initialized() else 1
