"""JPEG decoding on the device (data.decode=device) against the host decoder, on the same bytes.

Prints, for a batch of photo-like JPEGs at the training size: images/s of torchvision.io.decode_jpeg on
the device (one batched call, as JpegBatch.decode makes it) against simplejpeg on one host core (the
workers' decoder), and how far the device's pixels are from the host's (max and mean absolute
difference in 0-255 levels, share of values that differ, and the largest difference after the BLIP
normalisation, in the model's input units). On the CPU, torchvision's decoder is libjpeg-turbo and the
difference is zero; on CUDA it is nvJPEG.

    .venv/bin/python benchmarks/device_decode.py --device cpu --images 64
    python benchmarks/device_decode.py --device cuda --size 384 --images 512
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path


def photo_jpegs(count: int, size: int, quality: int) -> list[bytes]:
    """Smooth gradients, shapes of colour and sensor-like noise: JPEGs with photo-like spectra."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size] / size
    out = []
    for _ in range(count):
        a, b, c = rng.uniform(0, 255, 3)
        base = np.stack([a * x + (255 - a) * y, b * (1 - x) * y + 40, c * (x + y) / 2], -1)
        cx, cy, r = rng.uniform(0.2, 0.8, 2).tolist() + [rng.uniform(0.1, 0.3)]
        disk = ((x - cx) ** 2 + (y - cy) ** 2) < r**2
        base[disk] = rng.uniform(0, 255, 3)
        pixels = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
        out.append(buffer.getvalue())
    return out


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

    import simplejpeg
    import torch

    from coir.pipeline.device_decode import JpegBatch
    from coir.pipeline.models.blip.processor import BLIP_MEAN, BLIP_STD
    from coir.pipeline.models.pixels import normalize

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here; use --device cpu", file=sys.stderr)
        return 2
    jpegs = photo_jpegs(args.images, args.size, args.quality)
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
        host = [simplejpeg.decode_jpeg(data, "RGB") for data in jpegs]
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
