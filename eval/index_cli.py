"""`coir index`: embed a gallery with a trained model, for `coir search` and coir.eval.Retriever."""

from __future__ import annotations

import argparse
import json

HELP = "embed a gallery (an image folder or a gallery shard folder) with a trained model, for coir search"
EXAMPLE = """\
coir index --checkpoint runs/mine/train/export --images my/images --out runs/mine/index
coir index --checkpoint runs/mine/train/export --images runs/mine/shards/gallery --out runs/mine/index
# interrupted? rerun the same command: it continues with the first chunk not yet embedded"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint", required=True, metavar="DIR", help="a model export (coir train's export/)"
    )
    parser.add_argument(
        "--images",
        required=True,
        metavar="DIR",
        help="every image file under DIR (sorted by path), or a gallery shard folder (gallery-*.tar)",
    )
    parser.add_argument("--out", required=True, metavar="INDEX", help="the index folder to write")
    parser.add_argument("--batch-size", type=int, default=64, metavar="N")
    parser.add_argument(
        "--chunk", type=int, default=1024, metavar="N", help="images per saved part (resume unit)"
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: cuda when available)")
    parser.add_argument("--num-workers", type=int, default=0, metavar="N", help="image-decoding processes")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    import torch

    from coir.common.errors import ConfigError
    from coir.eval.gallery_index import build_index

    if args.chunk < 1 or args.batch_size < 1:
        raise ConfigError("--chunk and --batch-size must be at least 1")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    info = build_index(
        args.checkpoint,
        args.images,
        args.out,
        args.batch_size,
        args.chunk,
        device,
        args.num_workers,
        progress=not args.no_progress,
    )
    kind = (
        "faiss (exact inner product)" if info["faiss"] else f"exact, by the model's score ({info['search']})"
    )
    print(json.dumps({"index": args.out, "images": info["num_images"], "search": kind}, indent=1))
    return 0
