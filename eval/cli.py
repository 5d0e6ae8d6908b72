"""`coir eval`: evaluate a model export on a benchmark (CIRR, CIRCO, FashionIQ, LaSCo …); write results
and reports.

Settings come from the EvalConfig defaults, then --config YAML, then `key=value` overrides, then
the flags given on the command line (one per EvalConfig field and benchmark option: eval/flags.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from coir.eval.config import EvalConfig

HELP = "evaluate a model on a benchmark: CIRR, CIRCO, FashionIQ, LaSCo … (metrics, submissions, reports)"
EXAMPLE = """\
coir eval --checkpoint runs/demo/export --benchmark cirr --split val --data-root runs/world/cirr \\
    --out runs/eval
coir eval --config configs/zeroshot/fashioniq.yaml --checkpoint runs/demo/export \\
    data_root=runs/world/fashioniq --redundancy
coir eval --checkpoint CKPT --benchmark lasco --data-root runs/lasco --image-root runs/world/coco
coir eval --checkpoint CKPT --benchmark fashioniq --data-root FIQ --caption-orders both   # ARTEMIS protocol
coir eval --checkpoint CKPT --benchmark fashion200k --split test --data-root F200K   # TIRG protocol
coir eval --checkpoint runs/x/export --benchmark cirr --split test1 --data-root CIRR \\
    --image-root CIRR/img_raw   # the two server files, checked, under runs/x/eval/cirr-test1/submissions/
coir eval validate runs/x/eval/cirr-test1/submissions/*.json --split test1 --data-root CIRR
coir eval --checkpoint CKPT --benchmark circo --data-root CIRCO   # val: mAP@5/10/25/50, reference removed
coir eval --checkpoint CKPT --benchmark circo --data-root CIRCO --query-template searle \
    --no-remove-reference   # SEARLE's protocol ("a photo of $ that {caption}", the reference kept)
coir eval --checkpoint runs/x/export --benchmark circo --split test --data-root CIRCO   # server file
coir eval score --benchmark circo --data-root CIRCO other_code_base_val.json   # score anyone's file
torchrun --nproc_per_node 4 $(which coir) eval --checkpoint CKPT --benchmark cirr --data-root CIRR
                     # several ranks: each embeds a slice of the gallery and the queries"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from coir.eval.flags import add_eval_arguments

    add_eval_arguments(parser)


def build_config(args: argparse.Namespace) -> EvalConfig:
    """EvalConfig from defaults < --config < overrides < flags; checked."""
    from coir.common.errors import ConfigError
    from coir.eval.benchmarks import get_benchmark
    from coir.eval.config import check_eval_config
    from coir.eval.flags import eval_config_from_args

    config = eval_config_from_args(args)
    if config.checkpoint is None:
        raise ConfigError("key 'checkpoint' is required (give --checkpoint or set it in the config file)")
    check_eval_config(config)
    if config.out is None and config.split in get_benchmark(str(config.benchmark)).submission_splits:
        config.out = str(default_out(config.checkpoint, str(config.benchmark), config.split))
    return config


def default_out(checkpoint: str, benchmark: str, split: str) -> Path:
    """Where a split whose result is server files goes without --out: beside the checkpoint, never
    inside it (its files are the checkpoint's identity for the gallery cache):
    runs/x/export -> runs/x/eval/<benchmark>-<split>."""
    return Path(checkpoint).parent / "eval" / f"{benchmark}-{split}"


def run(args: argparse.Namespace) -> int:
    import logging

    from coir.eval.api import evaluate
    from coir.eval.benchmarks import get_benchmark
    from coir.eval.encode import world
    from coir.eval.ranks import eval_ranks
    from coir.eval.redundancy import redundancy_markdown
    from coir.eval.report import results_markdown

    config = build_config(args)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with eval_ranks(config) as config:
        evaluation = evaluate(config.checkpoint, config, progress=True)
        rank = world()[0]
    if rank == 0:
        print(results_markdown(evaluation.fragment), end="")
        for name, summary in evaluation.redundancy.items():
            print("\n" + redundancy_markdown(name, summary), end="")
        if config.out:
            print(f"reports in {config.out}")
        if config.split in get_benchmark(str(config.benchmark)).submission_splits:
            print(
                f"server files (checked against the {config.split} annotations) in {config.out}/submissions"
            )
    return 0
