"""`coir data shards cirr|circo|fashioniq|shoes|fashion200k|mit_states|custom`: triplets and galleries."""

from __future__ import annotations

import argparse
import json
import sys

from coir.datasets.fashion200k import TEXT_FORMS as FASHION200K_TEXT_FORMS
from coir.datasets.mit_states import DRAWS, TEXT_FORMS
from coir.datasets.shards.custom_set import SCHEMA_HELP
from coir.datasets.shards.images import RESIZE_MODES

HELP = (
    "shard CIRR, CIRCO, FashionIQ, Shoes, Fashion200k, MIT-States or your own (custom) triplets and "
    "galleries (test splits: queries + gallery)"
)
EXAMPLE = (
    """\
coir data shards cirr --root W/cirr --split val --out runs/cirr_val
coir data shards fashioniq --root W/fashioniq --split train --out runs/fiq_train --workers 2
coir data shards fashioniq --root W/fashioniq --split val --out runs/fiq_val --set categories=[dress]
coir data shards cirr --root W/cirr --split test1 --out runs/cirr_test   # queries/ + gallery/, no targets
coir data shards circo --root W/circo --split val --out runs/circo_val   # gallery/: COCO 2017 unlabeled
coir data shards shoes --root W/shoes --split train --out runs/shoes_train   # cross-split triplets: errors
coir data shards fashion200k --root W/fashion200k --split train --out runs/f200k --pairs-per-image 4 --seed 0
coir data shards fashion200k --root W/fashion200k --split test --out runs/f200k_test   # queries/, gallery/
coir data shards fashion200k --root W/f200k --split test --out runs/t --fashion200k-text target_description
coir data shards mit_states --root W/mit_states --split train --out runs/mit --pairs-per-image 4 --seed 0
coir data shards mit_states --root W/mit_states --split test --out runs/mit_t --mit-states-text adjective_noun
coir data shards custom --triplets my/triplets.jsonl --images my/images --out runs/mine  # triplets/, gallery/

custom: """
    + SCHEMA_HELP
    + """; bad lines and missing images go to errors.parquet with
their line number; gallery/ holds every distinct image the triplets name; --split only labels the build.
"""
)

_FLAGS = {
    "root": "root",
    "images": "root",
    "triplets": "triplets",
    "split": "split",
    "out": "out",
    "workers": "workers",
    "shard_size": "shard_size",
    "resize": "resize",
    "size": "size",
    "pairs_per_image": "pairs_per_image",
    "seed": "seed",
    "fashion200k_text": "fashion200k_text",
    "mit_states_text": "mit_states_text",
    "mit_states_draw": "mit_states_draw",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "dataset", choices=("cirr", "circo", "fashioniq", "shoes", "fashion200k", "mit_states", "custom")
    )
    parser.add_argument("--root", metavar="DIR", help="dataset root (captions/, image_splits/, images)")
    parser.add_argument(
        "--triplets", metavar="FILE.jsonl", help="custom: your triplets (" + SCHEMA_HELP + ")"
    )
    parser.add_argument(
        "--images", metavar="DIR", help="custom: the folder the triplets' paths are relative to"
    )
    parser.add_argument(
        "--split",
        help="cirr: train|val|test1; circo: val|test; fashioniq: train|val|test; "
        "shoes, fashion200k, mit_states: train|test; "
        "custom: a label only (default train)",
    )
    parser.add_argument("--out", metavar="DIR", help="output folder")
    parser.add_argument("--workers", type=int, metavar="N", help="worker processes (default 1)")
    parser.add_argument("--shard-size", type=int, metavar="N", help="samples per shard (default 1000)")
    parser.add_argument(
        "--resize",
        choices=RESIZE_MODES,
        help="side resized to --size; square: size x size, the training resolution (no resize at load)",
    )
    parser.add_argument("--size", type=int, metavar="PX", help="image side in pixels (default 384)")
    parser.add_argument(
        "--pairs-per-image",
        type=int,
        metavar="N",
        help="fashion200k, mit_states train: pairs drawn per image (default 4)",
    )
    parser.add_argument(
        "--seed", type=int, metavar="S", help="fashion200k, mit_states train: seed of the draw (default 0)"
    )
    parser.add_argument(
        "--fashion200k-text",
        choices=FASHION200K_TEXT_FORMS,
        help='fashion200k: text = "replace X with Y" (default) or the target\'s description (ComposeAE)',
    )
    parser.add_argument(
        "--mit-states-text",
        choices=TEXT_FORMS,
        help='mit_states: text = the target adjective (TIRG, default) or "adjective noun" (ComposeAE)',
    )
    parser.add_argument(
        "--mit-states-draw",
        choices=DRAWS,
        help="mit_states train: target adjective other than the reference's (default) or as released",
    )
    parser.add_argument("--config", metavar="YAML", help="config file (BenchmarkShardsConfig)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key"
    )
    parser.add_argument("--task-index", type=int, default=0, metavar="I")
    parser.add_argument("--num-tasks", type=int, default=1, metavar="N")
    parser.add_argument("--finalize", action="store_true", help="only merge a build whose tasks all finished")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from coir.common.config import load_config
    from coir.common.errors import ConfigError
    from coir.datasets.shards.finetune_sets import (
        BenchmarkShardsConfig,
        build_benchmark_shards,
        finalize_benchmark_shards,
    )

    if args.finalize:
        if not args.out:
            raise ConfigError("--finalize needs --out")
        print(json.dumps(finalize_benchmark_shards(args.out), indent=1))
        return 0
    if args.root is not None and args.images is not None:
        raise ConfigError("give --images or --root, not both")
    if args.dataset != "custom" and (args.triplets is not None or args.images is not None):
        raise ConfigError("--triplets and --images are for the custom dataset")
    flags = [f"dataset={json.dumps(args.dataset)}"]
    if args.dataset == "custom" and args.split is None:
        flags.append("split=train")
    flags += [
        f"{key}={json.dumps(getattr(args, name))}"
        for name, key in _FLAGS.items()
        if getattr(args, name) is not None
    ]
    config = load_config(BenchmarkShardsConfig, args.config, flags + list(args.set))
    report = build_benchmark_shards(config, args.task_index, args.num_tasks, progress=not args.no_progress)
    print(json.dumps(report, indent=1), file=sys.stderr)
    if args.num_tasks == 1:
        print(json.dumps(finalize_benchmark_shards(config.out), indent=1))
    return 0
