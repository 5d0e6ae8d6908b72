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


def run(args: argparse.Namespace) -> int:
    from coir.pipeline.features_cli import load_source
    from coir.pipeline.models.export import save_export

    model, _ = load_source(args.recipe, list(args.overrides))
    out = save_export(model.eval(), args.out)
    print(json.dumps({"export": str(out), "family": model.family, "name": model.name}), file=sys.stderr)
    return 0
