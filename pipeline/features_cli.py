"""`coir data features RECIPE|EXPORT [key=value ...] --shards IN --out OUT`: run a model's frozen image
part once over triplet shards and write feature shards (format: coir.pipeline.features).

RECIPE is a training recipe (with the same overrides as `coir train`: the model is built exactly as
the trainer builds it, seed included, and the JPEGs are decoded with its data.image_mode and
data.draft_size); EXPORT is a coir export folder (its weights). Train on the output with
data.inputs=features and data.shards=[OUT].
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "precompute a frozen backbone's features of triplet shards once (train with data.inputs=features)"
EXAMPLE = """\
coir data features configs/methods/artemis_cirr.yaml model.vocabulary=/data/cirr/vocab.json \\
    model.backbone_weights=/models/resnet152-imagenet.pth \\
    --shards /data/shards/cirr_train/triplets --out /data/shards/cirr_train_r152
coir data features runs/art_stage1/export --shards 'runs/fiq/triplets/*.tar' --out runs/fiq_feats \\
    --dtype float16"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source", metavar="RECIPE|EXPORT", help="training recipe (YAML) or coir export folder"
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="recipe overrides, as for coir train"
    )
    parser.add_argument(
        "--shards",
        nargs="+",
        required=True,
        metavar="IN",
        help="triplet shards: a shard folder, globs or paths",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder of the feature shards")
    parser.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: cuda when available)")
    parser.add_argument(
        "--batch-size", type=int, default=64, metavar="N", help="images per forward (default 64)"
    )
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=("float32", "float16"),
        help="stored precision (default float32)",
    )
    parser.add_argument("--no-progress", action="store_true")


def load_source(source: str, overrides: list[str]) -> tuple[object, object]:
    """(model, DataConfig) of a recipe (built as the trainer builds it) or an export."""
    import torch

    from coir.common.errors import ConfigError
    from coir.pipeline.config import DataConfig, check_model_paths, load_train_config
    from coir.pipeline.models.export import META, load_export
    from coir.pipeline.models.registry import build_model

    if Path(source, META).is_file():
        if overrides:
            raise ConfigError(f"overrides {overrides} apply to a recipe, not to the export {source}")
        return load_export(source), DataConfig()
    config = load_train_config(source, overrides)
    check_model_paths(config.model)
    torch.manual_seed(config.seed)  # the trainer's initial weights (a backbone without weight file is random)
    return build_model(config.model), config.data


def run(args: argparse.Namespace) -> int:
    import torch

    from coir.common.errors import ConfigError
    from coir.pipeline.config import resolve_shards
    from coir.pipeline.features_build import build_feature_shards

    model, data = load_source(args.source, list(args.overrides))
    frozen = model.frozen_image_features()
    if frozen is None:
        raise ConfigError(
            f"{args.source}: model.family={model.family} model.name={model.name} has no frozen image part "
            "with this config (its whole image path trains): there are no features to precompute"
        )
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model.eval().to(device)
    shards = resolve_shards(list(args.shards))
    manifest = build_feature_shards(
        frozen, model.processor(), shards, args.out, data, device, args.batch_size, args.dtype,
        progress=not args.no_progress,
    )  # fmt: skip
    summary = {k: manifest[k] for k in ("num_samples", "num_shards", "num_errors", "report")}
    print(json.dumps({"out": str(args.out), **summary}, indent=1), file=sys.stderr)
    return 0
