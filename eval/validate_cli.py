"""`coir eval validate`: check CIRR evaluation-server files against a split's annotations."""

from __future__ import annotations

import argparse

HELP = "check CIRR server files (recall / recall_subset) against the split's annotations before uploading"
EXAMPLE = """\
coir eval validate runs/x/eval/cirr-test1/submissions/*.json --split test1 --data-root /data/cirr
coir eval validate sub.json --split val --data-root /data/cirr --metric recall_subset"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from coir.datasets.cirr import CIRR_SPLITS
    from coir.eval.cirr_submission import LIST_LENGTH

    parser.add_argument("files", nargs="+", metavar="FILE", help="submission files (.json)")
    parser.add_argument("--split", default="test1", choices=CIRR_SPLITS, help="CIRR split (default test1)")
    parser.add_argument(
        "--data-root", required=True, metavar="DIR", help="CIRR folder (captions/, image_splits/)"
    )
    parser.add_argument(
        "--metric", choices=list(LIST_LENGTH), help="the metric each file must declare (default: either)"
    )


def run(args: argparse.Namespace) -> int:
    from coir.eval.cirr_submission import read_split_queries, validate_submission

    expected = read_split_queries(args.data_root, args.split)
    for path in args.files:
        metric, n = validate_submission(path, expected, args.metric)
        print(f"ok: {path}: {metric}, {n} queries of CIRR {args.split}")
    return 0
