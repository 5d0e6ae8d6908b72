"""`coir data synth`: render the synthetic world (COCO/VQA, CIRR, CIRCO, FashionIQ, Shoes, Fashion200k; real
formats)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "render the synthetic world: COCO/VQA 2.0, CIRR, CIRCO, FashionIQ, Shoes, Fashion200k, MIT-States"
EXAMPLE = """\
coir data synth --out runs/world --scale tiny --seed 0
coir data synth --out runs/world-small --scale small"""

SCALES = ("tiny", "small", "medium")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed -> identical bytes)")
    parser.add_argument("--scale", choices=SCALES, default="tiny", help="world size (default: tiny)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def run(args: argparse.Namespace) -> int:
    from coir.datasets.synth.build import build_world

    summary = build_world(args.out, seed=args.seed, scale=args.scale, progress=not args.no_progress)
    print(json.dumps(summary["counts"], indent=1, sort_keys=True))
    print(f"world written to {args.out}")
    return 0
