"""Training throughput of a CASE preset: samples/s, MFU, data-wait share, peak memory, largest batch.

For each image size, in one process and with the trainer's own pieces (DeepSpeed engine with torch
AdamW and the recipe's ZeRO stage, the WebDataset stream decoding uint8 images in DataLoader workers,
normalisation on the device, the trainer's FLOP counter):

  compute   the training step on one batch kept on the device (no data loading): the model's ceiling
  stream    the same step fed by the loader from shards stored at the training resolution (what
            `coir data shards --resize square --size S` writes); data-wait = time blocked in next(loader)
  stream, device decode  (--device-decode) the same with data.decode=device: the workers ship the JPEG
            bytes, the step decodes them on the device (pipeline/device_decode.py)
  compute, eager attention  (--compare-eager) compute with transformers' eager attention modules
            instead of SDPA (model.attention=eager), in the same process
  stream-4:3  (--shorter-side) the loader from shards of 4:3 images whose shorter side is S, resized in
            the workers: the cost of shards not built at the training resolution
  max batch (--max-batch SIZE, CUDA) at that image size, with and without gradient checkpointing: peak
            device memory at two batch sizes, the straight line through them extended to the device's
            memory, then training steps there (see largest_batch): a lower bound of the largest batch

Shards are written here (random-texture JPEGs, 2 per sample, 2 x --num-workers shards) unless --shards
and --tokenizer are given. MFU = FLOPs/sample x samples/s / peak, the peak from --peak-tflops or the
detected GPU's dense bf16 figure (coir.pipeline.throughput).

    .venv/bin/python benchmarks/train_throughput.py --preset tiny --image-sizes 64 --device cpu
    python benchmarks/train_throughput.py --preset base --image-sizes 224 384 --device cuda \\
        --batch-size 64 --num-workers 12 --shorter-side --device-decode --compare-eager --max-batch 384 \\
        --markdown gpu.md
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WORDS = ["red", "blue", "green", "small", "large", "circle", "square", "left", "right", "two", "dog", "car"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="tiny", choices=["tiny", "base"])
    parser.add_argument("--image-sizes", type=int, nargs="+", default=None, help="default: the preset's")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    parser.add_argument("--batch-size", type=int, default=16, help="per device, for compute and stream")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument("--zero-stage", type=int, default=2)
    parser.add_argument("--gradient-checkpointing", action="store_true", help="for compute and stream")
    parser.add_argument("--shorter-side", action="store_true", help="also stream from 4:3 shards")
    parser.add_argument(
        "--device-decode",
        action="store_true",
        help="also stream with data.decode=device (JPEGs decoded there)",
    )
    parser.add_argument(
        "--compare-eager", action="store_true", help="also time compute with model.attention=eager"
    )
    parser.add_argument(
        "--max-batch", type=int, default=None, metavar="SIZE", help="largest batch at this image size (CUDA)"
    )
    parser.add_argument("--shards", default=None, help="shard folder/glob; default: synthetic shards")
    parser.add_argument("--tokenizer", default=None, help="tokenizer of --shards' texts")
    parser.add_argument("--peak-tflops", type=float, default=None, help="default: the detected GPU's")
    parser.add_argument("--json", default=None, help="also write every figure to this JSON file")
    parser.add_argument("--markdown", default=None, help="also write the table to this file")
    parser.add_argument(
        "--profile",
        default=None,
        metavar="PATH",
        help="also profile 3 compute steps at the first size (torch.profiler) and write the top ops here",
    )
    args = parser.parse_args(argv)
    if args.max_batch is not None and args.device != "cuda":
        parser.error("--max-batch measures device memory: it needs --device cuda")
    if (args.shards is None) != (args.tokenizer is None):
        parser.error("--shards and --tokenizer go together (the tokenizer of the shards' texts)")
    return args


# ---- synthetic shards --------------------------------------------------------------------------


def _write_shard(path: str, width: int, height: int, first: int, count: int) -> None:
    """One shard as coir's shard builder writes it (datasets/shards/writer.py)."""
    import numpy as np
    from PIL import Image

    from coir.common import fields
    from coir.datasets.shards.writer import write_shard

    rng = np.random.default_rng(first)

    def jpeg() -> bytes:
        low = rng.integers(0, 255, (max(1, height // 16), max(1, width // 16), 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(low).resize((width, height), Image.BILINEAR).save(buffer, "JPEG", quality=90)
        return buffer.getvalue()

    samples = (
        (
            f"s{i:07d}",
            {
                fields.QUERY_IMAGE: jpeg(),
                fields.TARGET_IMAGE: jpeg(),
                fields.TEXT: " ".join(random.Random(i).choices(WORDS, k=8)).encode(),
            },
        )
        for i in range(first, first + count)
    )
    write_shard(path, samples)


def synthetic_shards(folder: Path, width: int, height: int, shards: int, per_shard: int) -> str:
    """`shards` tars of `per_shard` (query, target, text) samples of width x height JPEGs; their glob."""
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [
        (str(folder / f"bench-{s:04d}.tar"), width, height, s * per_shard, per_shard) for s in range(shards)
    ]
    with ProcessPoolExecutor(max_workers=min(len(jobs), os.cpu_count() or 1)) as pool:
        for future in [pool.submit(_write_shard, *job) for job in jobs]:
            future.result()
    return f"{folder}/*.tar"


def synthetic_tokenizer(folder: Path) -> Path:
    from coir.pipeline.models.blip.tokenizer import train_wordpiece

    texts = [" ".join(random.Random(i).choices(WORDS, k=8)) for i in range(256)]
    return train_wordpiece(texts, folder / "tokenizer", vocab_size=200)


# ---- the largest batch ---------------------------------------------------------------------------


class OutOfMemory(Exception):
    """A probe's batch did not fit in device memory."""


@dataclass
class Probe:
    batch_size: int
    peak_gib: float
    samples_per_s: float


def largest_batch(
    run: Callable[[int], Probe], first: int, capacity_gib: float, multiple: int = 8, attempts: int = 7
) -> tuple[Probe, int | None, float, float]:
    """The largest batch (a multiple of `multiple`) found to train in `capacity_gib`, in few probes: peak
    memory at `first` and 2 x `first`, the straight line through the two largest batches that ran
    (fixed + per-sample x batch) extended to the capacity; after an out-of-memory, the line extended to
    95 % of it (the allocator cannot hand out every byte); after a second one, halfway between the
    largest batch that ran and the smallest that did not. A lower bound of the true largest: returns the
    largest probe that ran, the smallest batch that ran out of memory (None: none did), and the fit's
    fixed GiB and GiB per sample."""
    probes = [run(first), run(2 * first)]
    best, failed, ooms = probes[-1], None, 0

    def fit() -> tuple[float, float]:
        a, b = sorted(probes, key=lambda p: p.batch_size)[-2:]
        per_sample = (b.peak_gib - a.peak_gib) / (b.batch_size - a.batch_size)
        if per_sample <= 0:
            raise RuntimeError(f"peak memory did not grow with the batch ({a} -> {b}): cannot fit it")
        return a.peak_gib - per_sample * a.batch_size, per_sample

    for _ in range(attempts):
        fixed, per_sample = fit()
        reach = capacity_gib * (0.95 if ooms else 1.0)
        guess = int((reach - fixed) / per_sample) // multiple * multiple
        if failed is not None and (ooms >= 2 or not best.batch_size < guess < failed):
            guess = min((best.batch_size + failed) // 2 // multiple * multiple, failed - multiple)
        if guess <= best.batch_size:
            break
        try:
            probes.append(run(guess))
        except OutOfMemory:
            failed, ooms = guess, ooms + 1
            continue
        best = probes[-1]
    return best, failed, *fit()


# ---- measuring ---------------------------------------------------------------------------------


@dataclass
class Bench:
    args: argparse.Namespace
    tokenizer: Path
    device: str
    dtype: Any
    use_cuda: bool

    def engine(
        self, image_size: int, batch_size: int, checkpointing: bool, attention: str = "sdpa"
    ) -> tuple[Any, Any]:
        """A fresh model (the preset, random weights) in a DeepSpeed engine for this batch size."""
        import deepspeed
        import torch

        from coir.pipeline.config import DataConfig, TrainConfig
        from coir.pipeline.engine import deepspeed_config, param_groups
        from coir.pipeline.models.blip.config import BlipModelConfig
        from coir.pipeline.models.registry import build_model

        torch.manual_seed(0)
        model_cfg = BlipModelConfig(
            preset=self.args.preset,
            tokenizer=str(self.tokenizer),
            image_size=image_size,
            gradient_checkpointing=checkpointing,
            attention=attention,
        )
        model = build_model(model_cfg)
        config = TrainConfig(model=model_cfg, data=DataConfig(shards=["unused"], batch_size=batch_size))
        config.optim.grad_clip, config.deepspeed.zero_stage = 1.0, self.args.zero_stage
        groups = [
            {k: v for k, v in g.items() if k != "names"} for g in param_groups(model, 0.05) if g["params"]
        ]
        engine, *_ = deepspeed.initialize(
            model=model,
            optimizer=torch.optim.AdamW(groups, lr=1e-5),
            dist_init_required=False,
            config=deepspeed_config(config, 1, self.dtype is not None),
        )
        engine.train()
        return engine, model.processor()

    def destroy(self, engine: Any) -> None:
        """Tear an engine down; the caller drops its reference, then calls collect()."""
        try:
            engine.destroy()
        except Exception as error:  # an engine that ran out of memory mid-step may not tidy up
            print(f"  engine.destroy: {type(error).__name__}: {error}", flush=True)

    def collect(self) -> None:
        """Give the freed device memory back and restart the peak-memory count."""
        import torch

        gc.collect()
        if self.use_cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    def loader(self, shards: str, processor: Any, batch_size: int, decode: str = "host") -> Any:
        from coir.pipeline.config import DataConfig, resolve_shards
        from coir.pipeline.data import StreamState, TrainStream, make_loader, open_batches

        workers = self.args.num_workers
        data_cfg = DataConfig(
            shards=[shards],
            batch_size=batch_size,
            num_workers=workers,
            shuffle_buffer=256,
            shuffle_initial=32,
            decode=decode,
            samples_per_epoch_per_worker=10**9 // max(1, workers),
        )
        stream = TrainStream(
            resolve_shards([shards]), processor, data_cfg, 0, 0, 1, StreamState.fresh(workers, 1)
        )
        return open_batches(make_loader(stream, data_cfg, seed=0, use_cuda=self.use_cuda))

    def inputs(self, batch: dict, processor: Any) -> dict:
        from coir.pipeline.data import split_batch
        from coir.pipeline.models.pixels import to_model_inputs

        return to_model_inputs(split_batch(batch)[0], processor, self.device, self.dtype)

    def sync(self) -> None:
        import torch

        if self.use_cuda:
            torch.cuda.synchronize()

    def step(self, engine: Any, inputs: dict) -> None:
        engine.backward(engine(inputs)["loss"])  # the trainer's micro-step (pipeline/engine.py)
        engine.step()

    def steady(self, engine: Any, inputs: dict, steps: int, warmup: int) -> float:
        """Seconds for `steps` training steps on the same batch, after `warmup` untimed ones."""
        for _ in range(warmup):
            self.step(engine, inputs)
        self.sync()
        start = time.perf_counter()
        for _ in range(steps):
            self.step(engine, inputs)
        self.sync()
        return time.perf_counter() - start

    def streamed(
        self, engine: Any, batches: Any, processor: Any, steps: int, warmup: int
    ) -> tuple[float, float]:
        """Seconds for `steps` steps fed by the loader, and the part of them spent waiting for it."""
        for _ in range(warmup):
            self.step(engine, self.inputs(next(batches), processor))
        self.sync()
        wait, start = 0.0, time.perf_counter()
        for _ in range(steps):
            t0 = time.perf_counter()
            batch = next(batches)
            wait += time.perf_counter() - t0
            self.step(engine, self.inputs(batch, processor))
        self.sync()
        return time.perf_counter() - start, wait


def profile_steps(bench: Bench, engine: Any, inputs: dict, path: Path) -> None:
    """3 training steps under torch.profiler: the ops and kernels that took the most device (or, on the
    CPU, host) time, with the totals, written to `path` and printed."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if bench.use_cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(3):
            bench.step(engine, inputs)
        bench.sync()
    averages = prof.key_averages()
    sort = "self_cuda_time_total" if bench.use_cuda else "self_cpu_time_total"
    text = averages.table(sort_by=sort, row_limit=40, max_name_column_width=70)
    path.write_text(text)
    print(text, flush=True)


def tile(inputs: dict, size: int) -> dict:
    """The batch's rows repeated to `size` rows (a batch of any size for memory probes)."""
    out = {}
    for key, value in inputs.items():
        repeats = math.ceil(size / value.shape[0])
        out[key] = value.repeat(repeats, *([1] * (value.dim() - 1)))[:size]
    return out


def row(
    measure: str, image_size: int, batch: int, samples_per_s: float, flops: float, peak: float | None
) -> dict:
    achieved = flops * samples_per_s / 1e12
    return {
        "measure": measure,
        "image_size": image_size,
        "batch_size": batch,
        "samples_per_s": samples_per_s,
        "gflops_per_sample": flops / 1e9,
        "achieved_tflops": achieved,
        "mfu": achieved / peak if peak else None,
    }


def measure_size(
    bench: Bench, image_size: int, workdir: Path, peak: float | None, first_size: bool = True
) -> list[dict]:
    import torch

    from coir.pipeline.throughput import peak_device_memory_gib, step_flops_per_sample

    args, rows = bench.args, []
    timed = args.warmup + args.steps
    per_shard = math.ceil(timed * args.batch_size / (2 * max(1, args.num_workers))) + args.batch_size
    shards = args.shards or synthetic_shards(
        workdir / f"square{image_size}", image_size, image_size, 2 * max(1, args.num_workers), per_shard
    )
    engine, processor = bench.engine(image_size, args.batch_size, args.gradient_checkpointing)
    rate = args.steps * args.batch_size  # samples per measurement

    def streamed(measure: str, shards: str, decode: str = "host") -> dict:
        with bench.loader(shards, processor, args.batch_size, decode) as batches:
            seconds, wait = bench.streamed(engine, batches, processor, args.steps, args.warmup)
        return row(measure, image_size, args.batch_size, rate / seconds, flops, peak) | {
            "data_wait_share": wait / seconds
        }

    with bench.loader(shards, processor, args.batch_size) as batches:
        first = bench.inputs(next(batches), processor)
    flops = step_flops_per_sample(engine.module, first)
    seconds = bench.steady(engine, first, args.steps, args.warmup)
    rows.append(row("compute", image_size, args.batch_size, rate / seconds, flops, peak))
    if args.profile and first_size:
        profile_steps(bench, engine, first, Path(args.profile))
    rows.append(streamed("stream", shards))
    if args.device_decode:
        rows.append(streamed("stream, device decode", shards, "device"))
    if args.shorter_side and not args.shards:
        workers = 2 * max(1, args.num_workers)
        wide = synthetic_shards(
            workdir / f"wide{image_size}", image_size * 4 // 3, image_size, workers, per_shard
        )
        rows.append(streamed("stream-4:3", wide))

    def memory() -> float | None:
        return peak_device_memory_gib(torch.device(bench.device)) if bench.use_cuda else None

    for r in rows:
        r["checkpointing"], r["peak_memory_gib"] = args.gradient_checkpointing, memory()
    bench.destroy(engine)
    engine = None
    bench.collect()
    if args.compare_eager:
        engine, _ = bench.engine(image_size, args.batch_size, args.gradient_checkpointing, "eager")
        seconds = bench.steady(engine, first, args.steps, args.warmup)
        eager = row("compute, eager attention", image_size, args.batch_size, rate / seconds, flops, peak)
        eager["checkpointing"] = args.gradient_checkpointing
        eager["peak_memory_gib"] = memory()
        rows.append(eager)
        bench.destroy(engine)
        engine = None
        bench.collect()
    if args.max_batch == image_size:
        rows.extend(max_batch_rows(bench, image_size, first, flops, peak))
    return rows


def max_batch_rows(
    bench: Bench, image_size: int, sample: dict, flops: float, peak: float | None
) -> list[dict]:
    import torch

    capacity = torch.cuda.mem_get_info()[1] / 2**30
    rows = []
    for checkpointing in (False, True):

        def run(batch_size: int, checkpointing: bool = checkpointing) -> Probe:
            engine, probe = None, None
            try:
                engine, _ = bench.engine(image_size, batch_size, checkpointing)
                seconds = bench.steady(engine, tile(sample, batch_size), steps=1, warmup=1)
                probe = Probe(batch_size, torch.cuda.max_memory_allocated() / 2**30, batch_size / seconds)
            except torch.OutOfMemoryError:
                pass  # handled below, once the exception (and the activations its frames hold) is gone
            if engine is not None:
                bench.destroy(engine)
                engine = None
            bench.collect()
            where = f"  {image_size} px, checkpointing {'on' if checkpointing else 'off'}, batch {batch_size}"
            if probe is None:
                print(f"{where}: out of memory", flush=True)
                raise OutOfMemory(where)
            print(f"{where}: peak {probe.peak_gib:.2f} GiB, {probe.samples_per_s:.1f} samples/s", flush=True)
            return probe

        best, failed, fixed, per_sample = largest_batch(run, bench.args.batch_size, capacity)
        r = row("max batch", image_size, best.batch_size, best.samples_per_s, flops, peak)
        r.update(
            checkpointing=checkpointing,
            peak_memory_gib=best.peak_gib,
            smallest_failed=failed,
            fixed_gib=fixed,
            gib_per_sample=per_sample,
            capacity_gib=capacity,
        )
        rows.append(r)
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| size | measure | checkpointing | batch | samples/s | data-wait | TFLOP/s | MFU | peak memory |",
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        wait = f"{100 * r['data_wait_share']:.1f} %" if "data_wait_share" in r else ""
        mfu = f"{100 * r['mfu']:.1f} %" if r["mfu"] is not None else "n/a"
        memory = f"{r['peak_memory_gib']:.1f} GiB" if r.get("peak_memory_gib") is not None else "n/a"
        lines.append(
            f"| {r['image_size']} | {r['measure']} | {'on' if r['checkpointing'] else 'off'} "
            f"| {r['batch_size']} "
            f"| {r['samples_per_s']:.1f} | {wait} | {r['achieved_tflops']:.1f} | {mfu} | {memory} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from coir.pipeline import distributed
    from coir.pipeline.throughput import detect_peak_tflops

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here; use --device cpu", file=sys.stderr)
        return 2
    use_cuda = args.device == "cuda"
    bf16 = args.precision == "bf16" or (args.precision == "auto" and use_cuda)
    sizes = args.image_sizes or [64 if args.preset == "tiny" else 384]
    workdir = Path(tempfile.mkdtemp(prefix="coir-bench-"))
    tokenizer = Path(args.tokenizer) if args.tokenizer else synthetic_tokenizer(workdir)

    dist_env = distributed.setup_environment()
    if use_cuda:
        torch.cuda.set_device(dist_env.local_rank)
    distributed.init_process_group(dist_env, use_cuda)
    device = f"cuda:{dist_env.local_rank}" if use_cuda else "cpu"
    peak = args.peak_tflops or detect_peak_tflops(device)
    bench = Bench(args, tokenizer, device, torch.bfloat16 if bf16 else None, use_cuda)
    header = {
        "preset": args.preset,
        "device": torch.cuda.get_device_name(0) if use_cuda else "cpu",
        "precision": "bf16" if bf16 else "fp32",
        "zero_stage": args.zero_stage,
        "num_workers": args.num_workers,
        "host_cores": os.cpu_count(),
        "peak_tflops": peak,
        "torch": torch.__version__,
    }
    print(" ".join(f"{k}={v}" for k, v in header.items()), flush=True)
    rows: list[dict] = []
    for size in sizes:
        rows.extend(measure_size(bench, size, workdir, peak, first_size=size == sizes[0]))
        print(table(rows), flush=True)  # every figure so far, should a later size fail
    if args.json:
        Path(args.json).write_text(json.dumps({"config": header, "rows": rows}, indent=1))
    if args.markdown:
        Path(args.markdown).write_text(table(rows) + "\n")
    distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
