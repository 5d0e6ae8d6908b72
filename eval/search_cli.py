"""`coir search`: the top k gallery images of a `coir index` index for a reference image and a text."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "search a coir index with a reference image and a modification text; prints and draws the top k"
EXAMPLE = """\
coir search --index runs/mine/index --image query.jpg --text "is blue with long sleeves"
coir search --index runs/mine/index --image query.jpg --text "is red" --k 20 --picture top.png"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--index", required=True, metavar="INDEX", help="a folder written by coir index")
    parser.add_argument("--image", required=True, metavar="FILE", help="the reference image")
    parser.add_argument("--text", required=True, help="the modification text")
    parser.add_argument("--k", type=int, default=10, metavar="N", help="results to show (default 10)")
    parser.add_argument(
        "--checkpoint", metavar="DIR", help="the model export (default: the one the index was built from)"
    )
    parser.add_argument(
        "--picture", metavar="PNG", help="where to draw the results (default: INDEX/search.png)"
    )
    parser.add_argument("--exact", action="store_true", help="exact search even when faiss is available")
    parser.add_argument("--device", default=None, help="cpu, cuda … (default: cuda when available)")


def run(args: argparse.Namespace) -> int:
    from coir.common.errors import ConfigError
    from coir.eval.retriever import Retriever

    if args.k < 1:
        raise ConfigError("--k must be at least 1")
    retriever = Retriever.load(args.checkpoint, args.index, args.device, exact=args.exact)
    hits = retriever.search(args.image, args.text, args.k)
    print(f"# {len(hits)} of {len(retriever.names)} images ({retriever.backend} search)")
    print("rank\tscore\tpath")
    for hit in hits:
        print(f"{hit.rank}\t{hit.score:.4f}\t{hit.path}")
    picture = retriever.picture(args.image, args.text, hits, args.picture or Path(args.index) / "search.png")
    print(f"# picture: {picture}")
    return 0
