"""`coir eval score`: the metrics of a predictions file in the evaluation server's format (CIRCO; CIRR's
two files), computed by the code of coir's own evaluation, so a file written by another code base
scores as coir scores its own."""

from __future__ import annotations

import argparse

HELP = "score prediction files in the server's format on a labelled split (CIRCO val, CIRR val)"
EXAMPLE = """\
coir eval score --benchmark circo --split val --data-root /data/circo predictions_val.json
coir eval score --benchmark circo --split val --data-root /data/circo searle_val.json --json
coir eval score --benchmark cirr --split val --data-root /data/cirr recall.json recall_subset.json"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files", nargs="+", metavar="FILE", help="CIRCO: one predictions file; CIRR: recall + recall_subset"
    )
    parser.add_argument("--benchmark", required=True, metavar="NAME", help="circo or cirr")
    parser.add_argument("--split", default="val", help="a split with labels (default val)")
    parser.add_argument("--data-root", required=True, metavar="DIR", help="the benchmark folder")
    parser.add_argument("--json", action="store_true", help="print the metrics as one JSON object")


def run(args: argparse.Namespace) -> int:
    import json

    from coir.eval.report import results_markdown
    from coir.eval.validate_cli import benchmark_and_split

    benchmark, split = benchmark_and_split(args.benchmark, args.split)
    metrics = benchmark.score_files(args.files, args.data_root, split)
    if args.json:
        print(json.dumps(metrics, indent=1))
    else:
        label = " + ".join(args.files)
        print(results_markdown({f"{benchmark.name}/{split}": {label: metrics}}), end="")
    return 0
