"""`coir eval zeroshot`: one checkpoint on every zero-shot benchmark (CIRR, CIRCO, FashionIQ val) beside
its family's baselines, one table (coir.eval.zeroshot, coir.eval.zeroshot_report).

Settings as `coir eval`'s: EvalConfig defaults < --config YAML < `key=value` overrides < flags; the
benchmark options (--query-template, --no-remove-reference, --caption-orders ...) go to the benchmark
that has them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "one zero-shot table: CIRR, CIRCO and FashionIQ val for a checkpoint and its baselines"
EXAMPLE = """\
coir eval zeroshot --checkpoint runs/demo/models/case/export --data-root runs/demo/world
    # the synthetic world's cirr/, circo/ and fashioniq/; report in runs/demo/models/case/eval/zeroshot
coir eval zeroshot --checkpoint runs/x/export --cirr /data/cirr --cirr-images /data/cirr/img_raw \\
    --circo /data/circo --fashioniq /data/fashioniq --out runs/x/zeroshot
coir eval zeroshot --checkpoint runs/x/export --circo /data/circo --query-template searle \\
    --no-remove-reference      # CIRCO alone, in SEARLE's protocol"""

# EvalConfig keys this command sets itself (per benchmark), or that belong to `coir eval` alone
EXCLUDED = ("benchmark", "split", "data_root", "image_root", "baseline", "redundancy", "redundancy_k")
ROOT, IMAGES = "zeroshot_root_", "zeroshot_images_"  # argparse dests of --<benchmark>, --<benchmark>-images


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from coir.eval.flags import DEST, add_eval_arguments
    from coir.eval.zeroshot import zero_shot_benchmarks

    add_eval_arguments(parser, exclude=EXCLUDED, benchmarks=zero_shot_benchmarks())
    roots = parser.add_argument_group("benchmarks (each found is evaluated on its val split)")
    roots.add_argument(
        "--data-root",
        dest=DEST + "data_root",
        metavar="DIR",
        help="a folder holding the benchmarks' folders by name (synthetic world: cirr/, circo/, fashioniq/)",
    )
    for name in zero_shot_benchmarks():
        flag = "--" + name.replace("_", "-")
        roots.add_argument(
            flag, dest=ROOT + name, metavar="DIR", help=f"the {name} folder (over <data-root>/{name})"
        )
        roots.add_argument(
            f"{flag}-images", dest=IMAGES + name, metavar="DIR", help=f"{name} images, if not in its folder"
        )


def default_out(checkpoint: str) -> Path:
    """Beside the checkpoint, never inside it (its files are its identity for the gallery cache)."""
    return Path(checkpoint).parent / "eval" / "zeroshot"


def run(args: argparse.Namespace) -> int:
    import logging

    from coir.common.errors import ConfigError
    from coir.eval.flags import eval_config_from_args
    from coir.eval.zeroshot import benchmark_roots, run_zero_shot, zero_shot_benchmarks
    from coir.eval.zeroshot_report import report_markdown, write_report

    names = zero_shot_benchmarks()
    given = {name: getattr(args, ROOT + name) for name in names}
    images = {name: getattr(args, IMAGES + name) for name in names}
    config = eval_config_from_args(args, benchmarks=names)  # data_root: the folder of the benchmarks
    for key in ("benchmark", "baseline"):
        if getattr(config, key) is not None:
            raise ConfigError(f"key {key!r}: coir eval zeroshot evaluates every benchmark and baseline")
    if config.split != "val":
        raise ConfigError(f"key 'split': the zero-shot report is on val, got {config.split!r}")
    if config.checkpoint is None:
        raise ConfigError("key 'checkpoint' is required (give --checkpoint or set it in the config file)")
    roots = benchmark_roots(config.data_root, given, images)
    config.out = config.out or str(default_out(config.checkpoint))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    report = run_zero_shot(config.checkpoint, config, roots, progress=True)
    write_report(report, config.out, config.results, config.pictures)
    print(report_markdown(report), end="")
    print(f"report in {config.out} (results.json, results.md, pictures)")
    return 0
