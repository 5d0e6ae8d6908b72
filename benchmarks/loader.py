"""Benchmark: the training loader's images/s per core against the bare decode-to-uint8 limit.

One thread per process (per core), the same JPEG bytes for every measure, at each --sizes side S:

- `limit`: simplejpeg decode -> uint8 tensor [3, S, S], nothing else: the most a loader core can give;
- `loader`: coir's training stream in the training process (data.num_workers=0; pipeline/data.py
  TrainStream: tar reading, shuffle buffer, decode, the BLIP processor's host part, tokenisation, batch
  collation) over shards built at the training resolution (`--resize square --size S`), for an epoch of
  --epoch triplets (the shard read again as needed); its images leave as uint8, the float conversion
  and normalisation run on the device in the training step (not counted: a batched device op);
- `loader, 1 worker`: the same epoch in one DataLoader worker process, as the trainer runs it on a CPU
  (`open_batches`; the batches reach this process in shared memory; no pin-memory thread; the worker's
  start-up counts), and `loader, 1 worker, unpooled`: the loader iterated directly, so every batch is in
  newly allocated shared memory (as before pipeline/batch_pool.py: page faults and zeroed pages);
- `ratio` = loader / limit, in the training process and in a worker (target >= 0.8, and >= 400 images/s
  per core at 384).

For context (same process, same sources): the loader over shards stored the old way (shorter side
resized to S, so every image is resized again at load: `shorter-side shards`), the loader with BLIP's
augmentation on (crop + bicubic resize + flip + RandAugment, on the host in uint8), and the float path
the loader replaced (PIL decode, resize, ToTensor, Normalize per image in the worker: `float path`).
The sources are synthetic 512 x 384 photos (gradients, shapes, noise), encoded at JPEG quality 90 as
the shard builder does. Rounds alternate the measures; each rate is the median over rounds, so
load from other processes on a shared machine hits them alike.

example:
  .venv/bin/python benchmarks/loader.py
  .venv/bin/python benchmarks/loader.py --sizes 384 --epoch 1024 --rounds 3
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__[__doc__.index("example:") :],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 384], help="training sides S in px")
    parser.add_argument("--triplets", type=int, default=128, help="triplets per shard (2 images each)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; rates are medians")
    parser.add_argument(
        "--epoch", type=int, default=4096, help="triplets per loader epoch (the measures named loader)"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    return parser.parse_args(argv)


def source_photos(folder: Path, count: int) -> list[Path]:
    """512 x 384 JPEG photos: smooth gradients, a few shapes, sensor-like noise."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:384, 0:512]
    paths = []
    for i in range(count):
        phase = rng.uniform(0, 6.28, 3)
        base = np.stack(
            [128 + 90 * np.sin(x / (40 + 9 * c) + y / (70 + 5 * c) + phase[c]) for c in range(3)], -1
        )
        image = Image.fromarray(np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(4):
            x0, y0 = int(rng.integers(0, 400)), int(rng.integers(0, 280))
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            draw.ellipse(
                (x0, y0, x0 + int(rng.integers(30, 110)), y0 + int(rng.integers(30, 100))), fill=colour
            )
        paths.append(folder / f"photo-{i:04d}.jpg")
        image.save(paths[-1], quality=90)
    return paths


def write_triplets(path: Path, images: list[bytes], triplets: int) -> None:
    """A triplet shard as coir's shard writer writes it (query.jpg, target.jpg, txt, json)."""
    from coir.datasets.shards.writer import write_shard

    words = ["circle", "square", "red", "blue", "the", "is", "now", "larger"]
    samples = (
        (
            f"t{i:06d}",
            {
                "query.jpg": images[(2 * i) % len(images)],
                "target.jpg": images[(2 * i + 1) % len(images)],
                "txt": " ".join(words[(i + k) % len(words)] for k in range(5)).encode(),
                "json": json.dumps({"index": i}).encode(),
            },
        )
        for i in range(triplets)
    )
    write_shard(path, samples)


def rate(run: Callable[[], int]) -> float:
    """Images per second of one call of `run` (which returns how many images it produced)."""
    start = time.perf_counter()
    images = run()
    return images / (time.perf_counter() - start)


def measures_at(
    size: int, photos: list[Path], tokenizer: object, work: Path, args: argparse.Namespace
) -> dict:
    """The named measures at side `size`, each a call returning how many images it produced."""
    import simplejpeg
    import torch
    from PIL import Image
    from torchvision import transforms as T

    from coir.datasets.shards.images import ImageEncoder
    from coir.pipeline.augment import AugmentConfig
    from coir.pipeline.config import DataConfig
    from coir.pipeline.data import StreamState, TrainStream, make_loader, open_batches
    from coir.pipeline.models.blip.processor import BLIP_MEAN, BLIP_STD, BlipProcessor

    processor = BlipProcessor(size, tokenizer, max_length=35)
    encoded = {
        mode: [ImageEncoder(mode, size, 90).encode(p) for p in photos] for mode in ("square", "shorter")
    }
    shards = {mode: work / f"{mode}-{size}.tar" for mode in encoded}
    for mode, images in encoded.items():
        write_triplets(shards[mode], images, args.triplets)
    order = [(2 * i + k) % len(photos) for i in range(args.triplets) for k in (0, 1)]  # the shards' images
    square, shorter = ([encoded[mode][i] for i in order] for mode in ("square", "shorter"))
    geometry = T.Resize((size, size), interpolation=T.InterpolationMode.BICUBIC)
    float_transform = T.Compose([geometry, T.ToTensor(), T.Normalize(BLIP_MEAN, BLIP_STD)])

    def limit() -> int:
        for data in square:
            torch.from_numpy(simplejpeg.decode_jpeg(data, "RGB")).permute(2, 0, 1)
        return len(square)

    def loader(mode: str, augment: bool = False, triplets: int = args.triplets) -> int:
        config = DataConfig(
            batch_size=args.batch_size,
            num_workers=0,
            shuffle_buffer=64,
            shuffle_initial=16,
            samples_per_epoch_per_worker=triplets,
            augment=AugmentConfig(enabled=augment),
        )
        stream = TrainStream([str(shards[mode])], processor, config, 0, 0, 1, StreamState.fresh(0, 1))
        return sum(2 * int(batch["query_image"].shape[0]) for batch in stream)

    def in_worker(pooled: bool) -> int:
        """The same stream in one DataLoader worker process, as the trainer runs it on a CPU (no
        pin-memory thread); the worker's start-up counts (~1 % of an epoch of 4,096 triplets)."""
        config = DataConfig(
            batch_size=args.batch_size,
            num_workers=1,
            shuffle_buffer=64,
            shuffle_initial=16,
            samples_per_epoch_per_worker=args.epoch,
        )
        stream = TrainStream([str(shards["square"])], processor, config, 0, 0, 1, StreamState.fresh(1, 1))
        loader = make_loader(stream, config, seed=0, use_cuda=False)
        # iterated directly, the loader has no release board: every batch in new shared memory, as before
        with open_batches(loader) if pooled else contextlib.nullcontext(loader) as batches:
            return sum(2 * int(batch["query_image"].shape[0]) for batch in batches)

    def float_path() -> int:
        for data in shorter:
            with Image.open(io.BytesIO(data)) as img:
                float_transform(img.convert("RGB"))
        return len(shorter)

    return {
        LIMIT: limit,
        LOADER: lambda: loader("square", triplets=args.epoch),
        WORKER: lambda: in_worker(pooled=True),
        "loader, 1 worker, unpooled": lambda: in_worker(pooled=False),
        "loader, shorter-side": lambda: loader("shorter"),
        "loader, augmented": lambda: loader("square", augment=True),
        "float path (old)": float_path,
    }, sum(map(len, square)) / len(square) / 1024


LIMIT, LOADER, WORKER = "limit (decode->uint8)", "loader", "loader, 1 worker"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from coir.pipeline.models.blip.tokenizer import load_tokenizer, train_wordpiece

    torch.set_num_threads(1)  # per core
    work = Path(tempfile.mkdtemp(prefix="coir-loader-bench-"))
    photos = source_photos(work, 32)
    tokenizer = load_tokenizer(
        train_wordpiece(["the circle is red now larger square blue"] * 20, work / "tok")
    )
    print(
        f"one core (torch threads 1), {2 * args.epoch} images per loader epoch, {2 * args.triplets} per "
        f"other measure, median of {args.rounds} rounds"
    )
    print(f"{'S':>4} {'measure':<26} {'images/s':>9} {'ms/image':>9} {'vs limit':>9}")
    for size in args.sizes:
        measures, kib = measures_at(size, photos, tokenizer, work, args)
        rates: dict[str, list[float]] = {name: [] for name in measures}
        for _ in range(args.rounds):
            for name, run in measures.items():
                rates[name].append(rate(run))
        median = {name: statistics.median(values) for name, values in rates.items()}
        for name, value in median.items():
            print(f"{size:>4} {name:<26} {value:>9.1f} {1000 / value:>9.2f} {value / median[LIMIT]:>8.2f}x")
        for name in (LOADER, WORKER):
            per_round = ", ".join(f"{a / b:.2f}" for a, b in zip(rates[name], rates[LIMIT], strict=True))
            ratio = median[name] / median[LIMIT]
            print(f"{size:>4} {name} / limit = {ratio:.2f} (per round: {per_round})")
        print(f"{size:>4} stored JPEG {kib:.1f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
