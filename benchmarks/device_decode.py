"""JPEG decoding on the device (data.decode=device) against the host decoder, on the same bytes.

Prints, for a batch of photo-like JPEGs at the training size (benchmarks/loader.py's sources, stored as
the shard builder stores them): images/s of torchvision.io.decode_jpeg on the device (one batched call,
as JpegBatch.decode makes it) against the workers' decoder (pipeline/decode.py: simplejpeg) on one host
core, and how far the device's pixels are from the host's (max and mean absolute difference in 0-255
levels, share of values that differ, and the largest difference after the BLIP normalisation, in the
model's input units). On the CPU, torchvision's decoder is libjpeg-turbo and the difference is zero; on
CUDA it is nvJPEG.

    .venv/bin/python benchmarks/device_decode.py --device cpu --images 64
    python benchmarks/device_decode.py --device cuda --size 384 --images 512
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def photo_jpegs(count: int, size: int, quality: int, folder: Path) -> list[bytes]:
    """loader.py's photo-like sources, stored as the shard builder stores them at the training size
    (`--resize square`): the JPEGs data.decode=device ships."""
    sys.path.insert(0, str(Path(__file__).parent))
    from loader import source_photos

    from coir.datasets.shards.images import ImageEncoder

    photos = source_photos(folder, min(count, 32))
    encoder = ImageEncoder("square", size, quality)
    encoded = [encoder.encode(path) for path in photos]
    return [encoded[i % len(encoded)] for i in range(count)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality of the test images")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (the best is kept)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    import torch

    from coir.pipeline.decode import decode_jpeg
    from coir.pipeline.device_decode import JpegBatch
    from coir.pipeline.models.blip.processor import BLIP_MEAN, BLIP_STD
    from coir.pipeline.models.pixels import normalize

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here; use --device cpu", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as folder:
        jpegs = photo_jpegs(args.images, args.size, args.quality, Path(folder))
    batch = JpegBatch.of(dict(enumerate(jpegs)), None, args.size, len(jpegs))

    def sync() -> None:
        if args.device == "cuda":
            torch.cuda.synchronize()

    batch.decode(args.device)  # warm-up: the decoder's state, the device's kernels
    sync()
    device_s = host_s = float("inf")
    for _ in range(args.rounds):
        start = time.perf_counter()
        decoded = batch.decode(args.device)
        sync()
        device_s = min(device_s, time.perf_counter() - start)
        start = time.perf_counter()
        host = [decode_jpeg(data, None) for data in jpegs]
        host_s = min(host_s, time.perf_counter() - start)
    host_batch = torch.stack([torch.from_numpy(image).permute(2, 0, 1) for image in host])
    got = decoded.cpu()
    difference = (got.int() - host_batch.int()).abs()
    normalized = (normalize(got, BLIP_MEAN, BLIP_STD) - normalize(host_batch, BLIP_MEAN, BLIP_STD)).abs()
    result = {
        "device": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu",
        "size": args.size,
        "images": args.images,
        "quality": args.quality,
        "device_images_per_s": args.images / device_s,
        "host_images_per_s_per_core": args.images / host_s,
        "max_abs_levels": int(difference.max()),
        "mean_abs_levels": float(difference.float().mean()),
        "share_differing": float((difference > 0).float().mean()),
        "share_over_2_levels": float((difference > 2).float().mean()),
        "max_abs_normalized": float(normalized.max()),
    }
    for key, value in result.items():
        print(f"{key:>28}: {value:.4g}" if isinstance(value, float) else f"{key:>28}: {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
