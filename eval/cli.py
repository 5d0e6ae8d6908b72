"""`coir eval`: evaluate a model export on CIRR, FashionIQ or LaSCo; write results and reports.

Settings come from the EvalConfig defaults, then --config YAML, then `key=value` overrides, then
the flags given on the command line.
"""

from __future__ import annotations

import argparse

HELP = "evaluate a model on CIRR, FashionIQ or LaSCo (recalls, submissions, redundancy, reports)"
EXAMPLE = """\
coir eval --checkpoint runs/demo/export --benchmark cirr --split val --data-root runs/world/cirr \\
    --out runs/eval
coir eval --config configs/zeroshot/fashioniq.yaml --checkpoint runs/demo/export \\
    data_root=runs/world/fashioniq --redundancy
coir eval --checkpoint CKPT --benchmark lasco --data-root runs/lasco --image-root runs/world/coco
coir eval --checkpoint CKPT --benchmark cirr --split test1 --data-root CIRR --image-root CIRR/img_raw \\
    --out sub        # writes the two official submission files under sub/submissions/
torchrun --nproc_per_node 4 $(which coir) eval --checkpoint CKPT --benchmark cirr --data-root CIRR
                     # several ranks: each embeds a slice of the gallery and the queries"""

# flag -> EvalConfig key, for flags whose value replaces the config's
_VALUE_FLAGS = (
    "checkpoint", "benchmark", "split", "data_root", "image_root", "model_name", "baseline", "image_only",
    "text_only", "caption_template", "batch_size", "device", "num_workers", "cache_dir", "memory_gb",
    "out", "results",
)  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. batch_size=64"
    )
    parser.add_argument("--config", help="YAML config (configs/zeroshot/*.yaml)")
    parser.add_argument("--checkpoint", help="exported model directory (coir_model.json + weights)")
    parser.add_argument("--benchmark", choices=["cirr", "fashioniq", "lasco"])
    parser.add_argument(
        "--split", help="cirr: val|test1|train; fashioniq: val|test; lasco: val (default val)"
    )
    parser.add_argument(
        "--data-root", help="benchmark folder (captions/ + image_splits/; LaSCo: lasco_val.json)"
    )
    parser.add_argument("--image-root", help="images, if not under --data-root (LaSCo: the COCO root)")
    parser.add_argument(
        "--baseline", choices=["image-only", "text-only"], help="evaluate a baseline derived from it"
    )
    parser.add_argument(
        "--redundancy",
        action="store_true",
        default=None,
        help="also run image-only and text-only; redundancy",
    )
    parser.add_argument("--image-only", metavar="PATH", help="trained image-only export (default: derived)")
    parser.add_argument("--text-only", metavar="PATH", help="trained text-only export (default: derived)")
    parser.add_argument("--redundancy-k", help="cut-offs of the redundancy analysis (default 1,10)")
    parser.add_argument("--model-name", help="the model's name in results.json (default case)")
    parser.add_argument(
        "--out", help="report folder: results.json (merged), results.md, pictures, submissions"
    )
    parser.add_argument("--results", help="results.json to merge into (default: <out>/results.json)")
    parser.add_argument("--categories", help="FashionIQ categories (default dress,shirt,toptee)")
    parser.add_argument("--caption-template", help='FashionIQ caption join (default "{c1} and {c2}")')
    parser.add_argument(
        "--mask-reference", action="store_true", default=None, help="FashionIQ/LaSCo: drop the reference"
    )
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--device", help="cpu | cuda | cuda:N (default: cuda when available)")
    parser.add_argument("--num-workers", type=int, help="image-loading worker processes (default 2)")
    parser.add_argument(
        "--cache-dir", help="gallery embedding cache (default $COIR_CACHE_DIR or ~/.cache/coir)"
    )
    parser.add_argument("--no-cache", action="store_true", help="always recompute gallery embeddings")
    parser.add_argument(
        "--memory-gb",
        type=float,
        help="working memory of the ranking; sizes the query x gallery chunks (default 1.0)",
    )
    parser.add_argument("--no-pictures", action="store_true", help="skip the PNG grid and the HTML page")


def _ks(text: str) -> list[int]:
    from coir.common.errors import ConfigError

    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--redundancy-k: expected integers separated by commas, got {text!r}") from None


def build_config(args: argparse.Namespace):
    """EvalConfig from defaults < --config < overrides < flags; checked."""
    from coir.common.config import load_config
    from coir.eval.config import EvalConfig, check_eval_config

    config = load_config(EvalConfig, args.config, list(args.overrides))
    for key in _VALUE_FLAGS:
        value = getattr(args, key, None)
        if value is not None:
            setattr(config, key, value)
    if args.redundancy:
        config.redundancy = True
    if args.mask_reference:
        config.mask_reference = True
    if args.redundancy_k:
        config.redundancy_k = _ks(args.redundancy_k)
    if args.categories:
        config.categories = [c for c in args.categories.split(",") if c]
    if args.no_cache:
        config.cache = False
    if args.no_pictures:
        config.pictures = False
    check_eval_config(config)
    return config


def run(args: argparse.Namespace) -> int:
    import logging
    import os

    import torch

    from coir.eval.api import evaluate_detailed
    from coir.eval.encode import world
    from coir.eval.redundancy import redundancy_markdown
    from coir.eval.report import results_markdown

    config = build_config(args)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    _init_process_group()
    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and world()[1] > 1:
        local_rank = int(os.environ.get("LOCAL_RANK", torch.distributed.get_rank()))
        device = f"cuda:{local_rank % torch.cuda.device_count()}"
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))  # NCCL collectives use the current device
    evaluation = evaluate_detailed(
        config.checkpoint,
        config.benchmark,
        config.split,
        config.data_root,
        image_root=config.image_root,
        out_dir=config.out,
        model_name=config.model_name,
        baseline=config.baseline,
        redundancy=config.redundancy,
        image_only=config.image_only,
        text_only=config.text_only,
        redundancy_ks=tuple(config.redundancy_k),
        categories=tuple(config.categories),
        fashioniq_template=config.caption_template,
        mask_reference=config.mask_reference,
        batch_size=config.batch_size,
        device=device,
        num_workers=config.num_workers,
        cache=config.cache,
        cache_dir=config.cache_dir,
        memory_gb=config.memory_gb,
        pictures=config.pictures,
        progress=True,
        results_file=config.results,
    )
    if world()[0] == 0:
        print(results_markdown(evaluation.fragment), end="")
        for name, summary in evaluation.redundancy.items():
            print("\n" + redundancy_markdown(name, summary), end="")
        if config.out:
            print(f"reports in {config.out}")
    return 0


def _init_process_group() -> None:
    """Join the process group when launched by torchrun / SLURM with several ranks."""
    import os

    import torch
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
