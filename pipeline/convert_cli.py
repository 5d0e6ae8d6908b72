"""`coir convert BLIP.pth --out DIR [--tokenizer DIR] [--config BLIPCONFIG.json]`: an original BLIP / LAVIS
retrieval checkpoint (what CASE and CoVR start from) as the Hugging Face folder `model.pretrained` loads
(format and mapping: coir.pipeline.models.blip.convert)."""

from __future__ import annotations

import argparse
import json

HELP = "convert an original BLIP / LAVIS retrieval .pth into the folder model.pretrained loads"
EXAMPLE = """\
coir convert /models/model_base_retrieval_coco.pth --tokenizer /models/bert-base-uncased \\
    --out /models/blip-retrieval-coco
coir train configs/finetune/cirr_case.yaml model.pretrained=/models/blip-retrieval-coco ..."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="BLIP.pth", help="original BLIP / LAVIS retrieval checkpoint")
    parser.add_argument("--out", required=True, metavar="DIR", help="the folder to write")
    parser.add_argument(
        "--tokenizer",
        metavar="DIR",
        help="tokenizer folder copied beside the weights (BLIP: bert-base-uncased); without it, training "
        "needs model.tokenizer=DIR",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="a BlipConfig JSON (e.g. config.json of Salesforce/blip-itm-base-coco); default: read from the "
        "tensor shapes, attention heads = hidden / 64",
    )


def run(args: argparse.Namespace) -> int:
    from coir.pipeline.card import build_card, write_card
    from coir.pipeline.models.blip.convert import convert_checkpoint

    report = convert_checkpoint(args.source, args.out, tokenizer=args.tokenizer, config=args.config)
    write_card(
        args.out,
        build_card(
            kind="converted",
            sources={"source": args.source, "--tokenizer": args.tokenizer},
            extra={"convert": report},
        ),
    )
    print(
        json.dumps({k: v for k, v in report.items() if k != "dropped"} | {"dropped": len(report["dropped"])})
    )
    if report["tokenizer"] is None:
        print(f"note: no tokenizer written; train with model.pretrained={args.out} model.tokenizer=DIR")
    return 0
