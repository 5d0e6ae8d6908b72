"""`coir export RECIPE [key=value ...] --out DIR`: a recipe's model as the trainer would start it (local
weights, seed included), written as a coir export without training: the zero-shot baselines (e.g.
CLIP4Cir's sum of raw CLIP features, `model.mode=sum`) and untrained initialisations for `coir eval`."""

from __future__ import annotations

import argparse
import json
import sys

HELP = "write a recipe's untrained model (local weights only) as an export for coir eval (zero-shot)"
EXAMPLE = """\
coir export configs/methods/clip4cir_fashioniq.yaml model.mode=sum \\
    model.clip_pretrained=/models/RN50x4-openai.pt --out runs/clip4cir_zero_shot
coir eval --checkpoint runs/clip4cir_zero_shot --benchmark fashioniq --data-root /data/fashioniq"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", metavar="RECIPE", help="training recipe (YAML)")
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="recipe overrides, as for coir train"
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="the export folder to write")
    parser.add_argument(
        "--name", help="the model's name in its provenance card, results and submissions (default: its own)"
    )


def run(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    from coir.pipeline.card import build_card
    from coir.pipeline.config import load_train_config
    from coir.pipeline.features_cli import load_source
    from coir.pipeline.models.export import META, save_export

    model, _ = load_source(args.recipe, list(args.overrides))
    card = None
    if not Path(args.recipe, META).is_file():
        config = load_train_config(args.recipe, list(args.overrides))
        card = build_card(
            kind="export",
            model_name=args.name or config.name or model.name,
            config=dataclasses.asdict(config) | {"recipe": str(Path(args.recipe).resolve())},
            sources=config.model.input_paths(),
            training={"step": 0, "samples_seen": 0},
        )
    out = save_export(model.eval(), args.out, card=card)
    print(json.dumps({"export": str(out), "family": model.family, "name": model.name}), file=sys.stderr)
    return 0
