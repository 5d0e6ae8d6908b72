"""Evaluation throughput: gallery embedding against the training forward, ranking against the matmul floor.

Encoding, one CASE preset (random weights, a tokenizer trained on the spot), synthetic JPEGs:
- `embed_gallery`: coir eval's gallery embedding (coir.eval.encode.embed_gallery: decode + processor
  in the DataLoader, model.encode_target under no_grad, batched), images/s;
- `eval forward`: model.encode_target under no_grad on one preprocessed batch kept in memory;
- `train forward`: model.encode_target in train mode with grad on the same batch (the training step's
  image tower, forward only);
- `cache hit`: embed_gallery again with a checkpoint fingerprint and a cache folder: the second call
  must load the cached state (no image encoded) and give the same tensor.

Ranking, random L2-normalised embeddings (a LaSCo-val-sized gallery by default), one excluded image per
query (CIRR removes the reference), the query chunk and gallery chunk from `chunk_sizes` as
`coir eval --memory-gb` picks them: coir.eval.ranking.rank (top-k, exact target ranks, exclusion)
against the floor, one [q_chunk, g] matmul + torch.topk per query chunk and nothing else. Also with the
gallery split in --split-chunk columns (a small memory budget). Each timing is the best of --repeats,
alternating the two, so a load spike hits both.

example:
  OMP_NUM_THREADS=2 .venv/bin/python benchmarks/eval_encode.py --preset tiny --images 512
  python benchmarks/eval_encode.py --preset base --device cuda --images 2048 --batch-size 128
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__[__doc__.index("example:") :],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--preset", default="tiny", choices=["tiny", "base"])
    parser.add_argument(
        "--image-size", type=int, default=None, help="model input size; default: the preset's"
    )
    parser.add_argument("--images", type=int, default=512, help="gallery images to embed")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=0, help="embed_gallery's DataLoader workers")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--gallery", type=int, default=40_000, help="ranking: gallery size")
    parser.add_argument("--queries", type=int, default=4_096, help="ranking: queries")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--memory-gb", type=float, default=2.0, help="ranking budget (coir eval --memory-gb)")
    parser.add_argument("--split-chunk", type=int, default=8192, help="gallery columns of the split run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-encode", action="store_true", help="only the ranking part")
    return parser.parse_args(argv)


def write_jpegs(folder: Path, n: int, side: int) -> list[Path]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        low = rng.integers(0, 255, (max(1, side // 16), max(1, side // 16), 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(low).resize((side * 4 // 3, side), Image.BILINEAR).save(buffer, "JPEG", quality=90)
        paths.append(folder / f"{i:06d}.jpg")
        paths[-1].write_bytes(buffer.getvalue())
    return paths


def best_of(repeats: int, *fns) -> list[float]:
    """Best wall time of each function over `repeats` rounds, the functions alternating within a round."""
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def encoding(args: argparse.Namespace, scratch: Path) -> dict:
    from coir.eval.encode import counting, embed_gallery
    from coir.pipeline.models.blip.config import BlipModelConfig
    from coir.pipeline.models.blip.tokenizer import train_wordpiece
    from coir.pipeline.models.registry import build_model

    words = "red blue green small large circle square left right two dog car"
    tokenizer = train_wordpiece([words] * 8, scratch / "tokenizer", vocab_size=120)
    image_size = args.image_size or (64 if args.preset == "tiny" else 384)
    torch.manual_seed(0)
    model = build_model(BlipModelConfig(preset=args.preset, tokenizer=str(tokenizer), image_size=image_size))
    model.to(args.device)
    paths = write_jpegs(scratch / "images", args.images, image_size)
    batch = torch.stack([model.processor().image(_open(p)) for p in paths[: args.batch_size]]).to(args.device)
    steps = max(1, args.images // args.batch_size)
    images = steps * args.batch_size

    def gallery() -> None:
        model.eval()
        embed_gallery(model, paths[:images], batch_size=args.batch_size, device=args.device,
                      num_workers=args.num_workers)  # fmt: skip

    def eval_forward() -> None:
        model.eval()
        with torch.no_grad():
            for _ in range(steps):
                model.encode_target(batch)

    def train_forward() -> None:
        model.train()
        for _ in range(steps):
            model.encode_target(batch)  # grad enabled: the autograd graph is built as in training

    gallery()  # warm-up (allocator, kernels)
    seconds = best_of(args.repeats, gallery, eval_forward, train_forward)
    model.eval()
    cache = scratch / "cache"
    first = embed_gallery(model, paths[:images], "bench-fingerprint", cache, args.batch_size, args.device)
    with counting() as counts:
        start = time.perf_counter()
        again = embed_gallery(model, paths[:images], "bench-fingerprint", cache, args.batch_size, args.device)
        cache_seconds = time.perf_counter() - start
    same = all(torch.equal(a, b) for a, b in zip(_leaves(first), _leaves(again), strict=True))
    return {
        "images": images,
        "image_size": image_size,
        "images_per_s": dict(
            zip(
                ("embed_gallery", "eval_forward", "train_forward"), (images / s for s in seconds), strict=True
            )
        ),  # fmt: skip
        "cache_seconds": cache_seconds,
        "cache_images_encoded": counts.get("gallery", 0),
        "cache_identical": same,
    }


def _open(path: Path):
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        return image


def _leaves(state) -> list[torch.Tensor]:
    from coir.pipeline.models.state import leaves

    return leaves(state)


def ranking(args: argparse.Namespace) -> dict:
    from coir.eval.ranking import chunk_sizes, rank

    sys.path.insert(0, str(Path(__file__).parent))
    from rank import make_embeddings

    queries, gallery, targets = make_embeddings(args.gallery, args.queries, args.dim, 0.02, 0)
    queries, gallery = queries.to(args.device), gallery.to(args.device)
    generator = torch.Generator().manual_seed(1)
    exclude = torch.randint(0, args.gallery, (args.queries, 1), generator=generator).tolist()
    query_chunk, gallery_chunk = chunk_sizes(args.queries, args.gallery, 0, int(args.memory_gb * 2**30))
    out = {"query_chunk": query_chunk, "gallery_chunk": gallery_chunk}

    def floor() -> None:
        for q0 in range(0, args.queries, query_chunk):
            torch.topk(queries[q0 : q0 + query_chunk] @ gallery.T, args.k, dim=1)

    def ranked(g_chunk: int):
        return lambda: rank(queries, gallery, args.k, targets.tolist(), exclude,
                            query_chunk=query_chunk, gallery_chunk=g_chunk)  # fmt: skip

    ranked(gallery_chunk)()  # warm-up
    t_floor, t_rank, t_split = best_of(args.repeats, floor, ranked(gallery_chunk), ranked(args.split_chunk))
    out.update(floor_s=t_floor, rank_s=t_rank, split_s=t_split)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(
        f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    result: dict = {"load_before": os.getloadavg()}
    if not args.skip_encode:
        with tempfile.TemporaryDirectory(prefix="coir-bench-") as scratch:
            enc = encoding(args, Path(scratch))
        rates = enc["images_per_s"]
        print(f"encoding, {args.preset} preset at {enc['image_size']} px, {enc['images']} images, "
              f"batch {args.batch_size}, {args.device}:")  # fmt: skip
        for name, rate in rates.items():
            print(f"  {name:14s} {rate:9.1f} images/s   {rate / rates['train_forward']:5.2f}x train forward")
        print(f"  cache hit: {enc['cache_seconds']:.3f} s, {enc['cache_images_encoded']} images encoded, "
              f"same state: {enc['cache_identical']}")  # fmt: skip
        result["encoding"] = enc
    rk = ranking(args)
    print(f"ranking, {args.queries} queries x {args.gallery} gallery, D={args.dim}, top-{args.k}, "
          f"chunks {rk['query_chunk']} x {rk['gallery_chunk']} (--memory-gb {args.memory_gb}):")  # fmt: skip
    print(f"  floor (matmul + topk)  {rk['floor_s']:7.3f} s")
    print(f"  coir rank              {rk['rank_s']:7.3f} s   {rk['rank_s'] / rk['floor_s']:5.2f}x the floor")
    print(f"  coir rank, gallery in {args.split_chunk}-column chunks  {rk['split_s']:7.3f} s   "
          f"{rk['split_s'] / rk['floor_s']:5.2f}x the floor")  # fmt: skip
    result["ranking"] = rk
    result["load_after"] = os.getloadavg()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
