"""`coir data lasco`: build LaSCo triplet and gallery shards from VQA 2.0 + COCO (or the published json)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from coir.datasets.shards.images import RESIZE_MODES

HELP = "build LaSCo triplets and WebDataset shards from VQA 2.0 + COCO (resumable, parallel)"
EXAMPLE = """\
coir data lasco --vqa W/vqa --coco W/coco --out runs/lasco --split val --workers 2
coir data lasco --from-official lasco_train.json --coco /data/coco --out /data/lasco --split train
coir data lasco ... --num-tasks 8 --task-index 3     # one range of an array job, then:
coir data lasco ... --num-tasks 8 --finalize         # merge once every task is done
coir data lasco ... --set filters.min_agreement=4 --set images.resize=longest --config my.yaml"""

# flag -> config key (only flags the user gave become overrides, applied after --config)
_FLAGS = {
    "vqa": "vqa",
    "coco": "coco",
    "out": "out",
    "split": "split",
    "from_official": "from_official",
    "official_corpus": "official_corpus",
    "workers": "workers",
    "shard_size": "shard_size",
    "resize": "images.resize",
    "size": "images.size",
    "rephraser": "rephraser.kind",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--vqa", metavar="DIR", help="folder with the VQA 2.0 questions/annotations/pairs json"
    )
    parser.add_argument("--coco", metavar="DIR", help="COCO root holding train2014/ and val2014/")
    parser.add_argument("--out", metavar="DIR", help="output folder")
    parser.add_argument("--split", choices=("train", "val"), help="split to build (default val)")
    parser.add_argument(
        "--from-official", metavar="JSON", help="shard a published lasco_{split}.json instead"
    )
    parser.add_argument(
        "--official-corpus", metavar="JSON", help="with --from-official: the corpus for the gallery"
    )
    parser.add_argument("--workers", type=int, metavar="N", help="worker processes (default 1)")
    parser.add_argument("--shard-size", type=int, metavar="N", help="triplets per shard (default 1000)")
    parser.add_argument(
        "--resize",
        choices=RESIZE_MODES,
        help="side resized to --size (default shorter); square: size x size, the training resolution",
    )
    parser.add_argument("--size", type=int, metavar="PX", help="image side in pixels (default 384)")
    parser.add_argument(
        "--rephraser", choices=("rule", "lm"), help="modification-text generator (default rule)"
    )
    parser.add_argument("--config", metavar="YAML", help="config file (LascoBuildConfig); flags override it")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override any config key (repeatable)"
    )
    parser.add_argument("--task-index", type=int, default=0, metavar="I", help="this task's range (0-based)")
    parser.add_argument("--num-tasks", type=int, default=1, metavar="N", help="number of ranges (array size)")
    parser.add_argument("--finalize", action="store_true", help="only merge a build whose tasks all finished")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def load_build_config(args: argparse.Namespace) -> Any:
    from coir.common.config import load_config
    from coir.datasets.lasco.config import LascoBuildConfig

    flags = [
        f"{key}={json.dumps(getattr(args, name))}"
        for name, key in _FLAGS.items()
        if getattr(args, name, None) is not None
    ]
    return load_config(LascoBuildConfig, args.config, flags + list(args.set))


def format_report(report: dict[str, Any]) -> str:
    lines = []
    construction = report.get("construction", {})
    if construction:
        lines.append("construction: " + ", ".join(f"{k}={v}" for k, v in construction.items()))
    for name in ("triplets", "gallery"):
        part = report.get(name)
        if isinstance(part, dict):
            reasons = ", ".join(f"{k}={v}" for k, v in part["errors_by_reason"].items()) or "none"
            lines.append(
                f"{name}: {part['num_samples']} samples in {part['num_shards']} shards; "
                f"{part['num_errors']} skipped inputs ({reasons})"
            )
    if "shards_written" in report:
        lines.append(
            f"this task: {report['shards_written']} shards written, {report['samples_written']} samples, "
            f"{report['samples_skipped']} skipped, {report['images_encoded']} images encoded, "
            f"{report['images_reused']} reused"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from coir.common.errors import ConfigError
    from coir.datasets.lasco.build import build_lasco, finalize_build

    if args.finalize:
        if not args.out:
            raise ConfigError("--finalize needs --out")
        print(format_report(finalize_build(args.out)))
        return 0
    config = load_build_config(args)
    report = build_lasco(config, args.task_index, args.num_tasks, progress=not args.no_progress)
    print(format_report(report), file=sys.stderr if args.num_tasks == 1 else sys.stdout)
    if args.num_tasks == 1:
        print(format_report(finalize_build(config.out)))
    else:
        print(f"task {args.task_index} of {args.num_tasks} done; run with --finalize once all tasks finished")
    return 0
