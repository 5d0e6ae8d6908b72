"""`coir train CONFIG [key=value ...] [--resume auto|PATH]` — also `python -m coir.pipeline.train_cli`.

The same command runs as one process, under torchrun / the deepspeed launcher (ranks from RANK,
WORLD_SIZE, LOCAL_RANK) and under SLURM or submitit (see coir.pipeline.distributed). Exit code 0 when
training completed, 75 (EX_TEMPFAIL) when it stopped on SIGUSR2/SIGTERM after writing a checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys

HELP = "train a model with DeepSpeed on WebDataset shards (pretraining or finetuning)"
EXAMPLE = """\
coir train configs/pretrain/case_tiny.yaml data.shards=[runs/lasco/triplets] run_dir=runs/tiny
coir train configs/pretrain/case_tiny.yaml run_dir=runs/tiny --resume auto
torchrun --nproc_per_node 8 -m coir.pipeline.train_cli configs/pretrain/case_base.yaml run_dir=runs/base
deepspeed --num_gpus 8 --module coir.pipeline.train_cli configs/pretrain/case_base.yaml run_dir=runs/base"""

EXIT_PREEMPTED = 75


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="training recipe (YAML), e.g. configs/pretrain/case_tiny.yaml")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="config overrides, e.g. optim.lr=3e-4 data.batch_size=64",
    )
    parser.add_argument(
        "--resume",
        default=None,
        metavar="auto|PATH",
        help="resume from the newest checkpoint (auto) or a checkpoint folder "
        "(same as checkpoint.resume=...)",
    )
    # the deepspeed launcher appends --local_rank=N (LOCAL_RANK is in the environment as well)
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    import logging
    import os

    from coir.pipeline.config import load_train_config
    from coir.pipeline.engine import train

    overrides = list(args.overrides)
    if args.resume is not None:
        overrides.append(f"checkpoint.resume={args.resume}")
    config = load_train_config(args.config, overrides)
    rank = int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"%(asctime)s rank{rank} %(name)s %(levelname)s: %(message)s",
    )
    result = train(config)
    if rank == 0:
        print(json.dumps(result), flush=True)
    return 0 if result["status"] == "completed" else EXIT_PREEMPTED


def main(argv: list[str] | None = None) -> int:
    from coir.common.errors import CoirError

    parser = argparse.ArgumentParser(
        prog="coir train",
        description=HELP,
        epilog="example:\n" + EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except CoirError as error:
        print(f"coir: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
