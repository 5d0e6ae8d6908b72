"""`coir data vocab`: the word vocabulary of the ARTEMIS / CMAP / MANME text encoders."""

from __future__ import annotations

import argparse

HELP = "build the word vocabulary (GloVe + BiGRU/LSTM methods) from a dataset's training captions"
EXAMPLE = """\
coir data vocab --dataset fashioniq --root W/fashioniq --out runs/vocab/fashioniq.json
coir data vocab --dataset cirr --root W/cirr --out runs/vocab/cirr.json
coir data vocab --dataset shoes --root W/shoes --out runs/vocab/shoes.json
coir data vocab --dataset fashion200k --root W/fashion200k --out runs/vocab/fashion200k.json
coir data vocab --dataset mit_states --root W/mit_states --out runs/vocab/mit_states.json
coir data vocab --dataset cirr --root W/cirr --split val --out /tmp/cirr_val.json   # val: not for training"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset", required=True, choices=("fashioniq", "cirr", "shoes", "fashion200k", "mit_states")
    )
    parser.add_argument(
        "--root",
        required=True,
        metavar="DIR",
        help="dataset root (captions/; Shoes: relative_captions_shoes.json; Fashion200k: labels/; "
        "MIT-States: images/)",
    )
    parser.add_argument("--out", required=True, metavar="FILE", help="vocabulary JSON to write")
    parser.add_argument(
        "--split", default="train", help="captions to read (default train, as the reference; val/test leak)"
    )
    parser.add_argument(
        "--threshold",
        type=int,
        default=0,
        metavar="N",
        help="keep words seen at least N times (default 0: all)",
    )


def run(args: argparse.Namespace) -> int:
    from coir.datasets.vocab import LEADING_WORDS, SPECIAL_TOKENS, Vocabulary, dataset_captions

    captions = dataset_captions(args.dataset, args.root, args.split)
    vocab = Vocabulary.from_captions(captions, args.threshold, LEADING_WORDS.get(args.dataset, ()))
    path = vocab.save(args.out)
    print(
        f"{args.dataset} vocabulary from {len(captions):,} {args.split} captions: {len(vocab):,} entries "
        f"= {vocab.num_words:,} words + {len(SPECIAL_TOKENS)} special tokens ({' '.join(SPECIAL_TOKENS)}); "
        f"written to {path}"
    )
    return 0
