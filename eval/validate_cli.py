"""`coir eval validate`: check evaluation-server files (CIRR, CIRCO) against a split's annotations."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from coir.eval.benchmarks import Benchmark

HELP = "check evaluation-server files (CIRR recall / recall_subset, CIRCO predictions) before uploading"
EXAMPLE = """\
coir eval validate runs/x/eval/cirr-test1/submissions/*.json --split test1 --data-root /data/cirr
coir eval validate sub.json --split val --data-root /data/cirr --metric recall_subset
coir eval validate runs/x/eval/circo-test/submissions/circo-test-case.json --benchmark circo \\
    --split test --data-root /data/circo"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="submission files (.json)")
    parser.add_argument(
        "--benchmark",
        default="cirr",
        metavar="NAME",
        help="the benchmark of the files: cirr (default), circo",
    )
    parser.add_argument(
        "--split", help="the split (default: the benchmark's server split: cirr test1, circo test)"
    )
    parser.add_argument(
        "--data-root",
        required=True,
        metavar="DIR",
        help="benchmark folder (CIRR: captions/, image_splits/; CIRCO: annotations/, COCO2017_unlabeled/)",
    )
    parser.add_argument(
        "--metric", help="CIRR: the metric each file must declare, recall or recall_subset (default: either)"
    )


def benchmark_and_split(name: str, split: str | None) -> tuple[Benchmark, str]:
    """The registered benchmark and the split (its first server split by default), checked."""
    from coir.common.errors import ConfigError
    from coir.eval.benchmarks import get_benchmark

    benchmark = get_benchmark(name)
    split = split or (benchmark.submission_splits or benchmark.splits)[0]
    if split not in benchmark.splits:
        raise ConfigError(f"--split: {name} has the splits {', '.join(benchmark.splits)}, got {split!r}")
    return benchmark, split


def run(args: argparse.Namespace) -> int:
    benchmark, split = benchmark_and_split(args.benchmark, args.split)
    for line in benchmark.validate_files(args.files, args.data_root, split, args.metric):
        print(line)
    return 0
