"""`coir info PATH`: the provenance card (coir_card.json) of an export, a training checkpoint (a step folder,
or a checkpoint folder: its newest complete one), a run folder (its export) or a converted checkpoint."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "print the provenance card of an export, checkpoint or converted checkpoint"
EXAMPLE = """\
coir info runs/cirr_case/export
coir info runs/cirr_case/checkpoints          # the newest complete checkpoint's card"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="PATH", help="export, checkpoint, run or converted folder")
    parser.add_argument("--key", help="print only this top-level field of the card (e.g. evaluations)")


def card_folder(path: Path) -> Path:
    """The folder whose card PATH means (MissingInputError naming PATH when none has one)."""
    from coir.common.errors import MissingInputError
    from coir.pipeline import checkpoint
    from coir.pipeline.card import CARD

    candidates = [path, path / "export", path / "checkpoints"]
    for folder in candidates:
        if (folder / CARD).is_file():
            return folder
        newest = checkpoint.newest(folder)
        if newest is not None and (newest / CARD).is_file():
            return newest
    raise MissingInputError(path / CARD, "provenance card")


def run(args: argparse.Namespace) -> int:
    from coir.common.errors import ConfigError
    from coir.pipeline.card import read_card

    folder = card_folder(Path(args.path))
    card = read_card(folder) or {}
    if args.key is not None:
        if args.key not in card:
            raise ConfigError(f"--key: the card {folder} has no field {args.key!r} (has: {', '.join(card)})")
        card = card[args.key]
    print(f"# {folder / 'coir_card.json'}", file=sys.stderr)
    print(json.dumps(card, indent=1))
    return 0
