"""Training throughput of a CASE preset: samples/s, data-wait share, FLOPs per sample and MFU.

Two measurements in the same process, with the trainer's own pieces (DeepSpeed engine with the torch
AdamW and ZeRO stage of the recipe, the WebDataset stream with decoding and the Processor in workers):
  compute  the training step on one batch kept on the device (no data loading): the model-only ceiling
  stream   the full step fed by the data loader from shards (written here with synthetic JPEGs at
           2x the input size unless --shards is given); data-wait = time blocked in next(loader)
FLOPs per sample come from torch's FLOP counter (coir.pipeline.models.flops.train_flops_per_sample,
forward + backward); MFU = FLOPs/sample x samples/s / (--peak-tflops x 1e12).

    .venv/bin/python benchmarks/train_throughput.py --preset tiny --image-size 64 --device cpu
    python benchmarks/train_throughput.py --preset base --image-size 384 --device cuda --precision bf16 \\
        --batch-size 64 --num-workers 12 --peak-tflops 989     # H100 SXM dense bf16
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
import tempfile
import time
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="tiny", choices=["tiny", "base"])
    parser.add_argument("--image-size", type=int, default=None, help="default: the preset's")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    parser.add_argument("--batch-size", type=int, default=16, help="per device")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument("--zero-stage", type=int, default=2)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--shards", default=None, help="shard folder/glob; default: synthetic shards")
    parser.add_argument(
        "--tokenizer", default=None, help="tokenizer dir; default: a small WordPiece made here"
    )
    parser.add_argument(
        "--peak-tflops", type=float, default=None, help="device peak for MFU (e.g. 989 for H100 bf16)"
    )
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    return parser.parse_args(argv)


def synthetic_inputs(folder: Path, image_size: int, samples: int) -> tuple[Path, Path]:
    """Shards of random-texture JPEGs at 2x the input size, and a tokenizer trained on their texts."""
    import numpy as np
    import webdataset as wds
    from PIL import Image

    from coir.common import fields
    from coir.pipeline.models.blip.tokenizer import train_wordpiece

    rng = np.random.default_rng(0)
    words = [
        "red",
        "blue",
        "green",
        "small",
        "large",
        "circle",
        "square",
        "left",
        "right",
        "two",
        "dog",
        "car",
    ]
    texts = [" ".join(random.Random(i).choices(words, k=8)) for i in range(samples)]
    side = 2 * image_size
    shard_dir = folder / "shards"
    shard_dir.mkdir(parents=True, exist_ok=True)
    per_shard = max(1, samples // 4)
    for s in range(4):
        with wds.TarWriter(str(shard_dir / f"bench-{s:06d}.tar")) as sink:
            for i in range(per_shard):
                jpegs = []
                for _ in range(2):
                    low = rng.integers(0, 255, (side // 16, side // 16, 3), dtype=np.uint8)
                    img = Image.fromarray(low).resize((side, side), Image.BILINEAR)
                    buffer = io.BytesIO()
                    img.save(buffer, format="JPEG", quality=90)
                    jpegs.append(buffer.getvalue())
                sink.write(
                    {
                        "__key__": f"b{s}_{i:06d}",
                        fields.QUERY_IMAGE: jpegs[0],
                        fields.TARGET_IMAGE: jpegs[1],
                        fields.TEXT: texts[s * per_shard + i],
                    }
                )
    return shard_dir, train_wordpiece(texts, folder / "tokenizer", vocab_size=200)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import deepspeed
    import torch

    from coir.pipeline import distributed
    from coir.pipeline.config import DataConfig, TrainConfig, resolve_shards
    from coir.pipeline.data import StreamState, TrainStream, make_loader, open_batches, split_batch
    from coir.pipeline.engine import deepspeed_config, param_groups
    from coir.pipeline.models.blip.config import BlipModelConfig
    from coir.pipeline.models.flops import train_flops_per_sample
    from coir.pipeline.models.pixels import to_model_inputs
    from coir.pipeline.models.registry import build_model

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here; use --device cpu", file=sys.stderr)
        return 2
    use_cuda = args.device == "cuda"
    bf16 = args.precision == "bf16" or (args.precision == "auto" and use_cuda)
    image_size = args.image_size or (64 if args.preset == "tiny" else 384)
    timed = args.warmup + args.steps
    workdir = Path(tempfile.mkdtemp(prefix="coir-bench-"))
    if args.shards and args.tokenizer:
        shards, tokenizer = args.shards, Path(args.tokenizer)  # a build folder (or a glob) and its tokenizer
    else:
        shard_dir, tokenizer = synthetic_inputs(
            workdir, image_size, samples=max(64, timed * args.batch_size // 2)
        )
        shards = f"{shard_dir}/*.tar"  # hand-written tars: no build manifest

    torch.manual_seed(0)
    model_cfg = BlipModelConfig(
        preset=args.preset,
        tokenizer=str(tokenizer),
        image_size=image_size,
        gradient_checkpointing=args.gradient_checkpointing,
    )
    model = build_model(model_cfg)
    params = sum(p.numel() for p in model.parameters())
    data_cfg = DataConfig(
        shards=[shards],
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        shuffle_buffer=256,
        shuffle_initial=32,
        samples_per_epoch_per_worker=10**9 // max(1, args.num_workers),
    )
    config = TrainConfig(model=model_cfg, data=data_cfg)
    config.optim.grad_clip, config.deepspeed.zero_stage = 1.0, args.zero_stage

    dist_env = distributed.setup_environment()
    if use_cuda:
        torch.cuda.set_device(dist_env.local_rank)
    distributed.init_process_group(dist_env, use_cuda)
    device = f"cuda:{dist_env.local_rank}" if use_cuda else "cpu"
    dtype = torch.bfloat16 if bf16 else None

    stream = TrainStream(
        resolve_shards([shards]),
        model.processor(),
        data_cfg,
        seed=0,
        rank=0,
        world_size=1,
        state=StreamState.fresh(args.num_workers, 1),
    )
    groups = [{k: v for k, v in g.items() if k != "names"} for g in param_groups(model, 0.05) if g["params"]]
    optimizer = torch.optim.AdamW(groups, lr=1e-5)
    engine, *_ = deepspeed.initialize(
        model=model, optimizer=optimizer, dist_init_required=False, config=deepspeed_config(config, 1, bf16)
    )
    module = engine.module
    module.train()

    processor = model.processor()

    def to_device(batch: dict) -> dict:  # uint8 images normalised on the device, as the trainer does
        inputs, _ = split_batch(batch)
        return to_model_inputs(inputs, processor, device, dtype)

    def sync() -> None:
        if use_cuda:
            torch.cuda.synchronize()

    def step(batch: dict) -> None:
        engine.backward(module.loss(batch)["loss"])
        engine.step()

    with open_batches(make_loader(stream, data_cfg, seed=0, use_cuda=use_cuda)) as loader:
        first = to_device(next(loader))
        flops_model = build_model(model_cfg).to(device)
        flops_batch = {k: v.float() if v.is_floating_point() else v for k, v in first.items()}
        flops = train_flops_per_sample(flops_model, flops_batch)
        del flops_model

        # warm-up on streamed batches (warms the kernels and the loader alike), then compute only (the
        # same batch again and again), then the full pipeline
        for _ in range(args.warmup):
            step(to_device(next(loader)))
        sync()
        start = time.perf_counter()
        for _ in range(args.steps):
            step(first)
        sync()
        compute_s = time.perf_counter() - start

        wait = 0.0
        start = time.perf_counter()
        for _ in range(args.steps):
            t0 = time.perf_counter()
            batch = next(loader)
            wait += time.perf_counter() - t0
            step(to_device(batch))
        sync()
        stream_s = time.perf_counter() - start

    samples = args.steps * args.batch_size
    rows = []
    for name, seconds, waited in (("compute", compute_s, 0.0), ("stream", stream_s, wait)):
        sps = samples / seconds
        tflops = flops * sps / 1e12
        rows.append(
            {
                "measure": name,
                "samples_per_s": sps,
                "data_wait_share": waited / seconds,
                "achieved_tflops": tflops,
                "mfu": tflops / args.peak_tflops if args.peak_tflops else None,
                "ratio_vs_compute": (samples / seconds) / (samples / compute_s),
            }
        )
    device_name = torch.cuda.get_device_name(0) if use_cuda else "cpu"
    header = {
        "preset": args.preset,
        "image_size": image_size,
        "device": device_name,
        "precision": "bf16" if bf16 else "fp32",
        "zero_stage": args.zero_stage,
        "batch_size": args.batch_size,
        "num_workers": args.num_workers,
        "params_M": params / 1e6,
        "train_gflops_per_sample": flops / 1e9,
        "peak_tflops": args.peak_tflops,
        "torch_threads": torch.get_num_threads(),
    }
    print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in header.items()))
    print(f"{'measure':<9} {'samples/s':>10} {'data-wait':>10} {'TFLOP/s':>9} {'MFU':>7} {'vs compute':>11}")
    for row in rows:
        mfu = f"{100 * row['mfu']:.1f}%" if row["mfu"] is not None else "n/a"
        print(
            f"{row['measure']:<9} {row['samples_per_s']:>10.2f} {100 * row['data_wait_share']:>9.1f}% "
            f"{row['achieved_tflops']:>9.4f} {mfu:>7} {row['ratio_vs_compute']:>10.2f}x"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"config": header, "rows": rows}, indent=1))
    distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
