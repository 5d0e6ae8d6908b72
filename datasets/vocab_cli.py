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
coir data vocab --dataset cirr --root W/cirr --split val --out /tmp/cirr_val.json   # val: not for training
coir data vocab --dataset fashion200k --root W/fashion200k --tokenizer tirg --out runs/vocab/tirg.json
coir data vocab --dataset custom --root my/triplets.jsonl --out runs/vocab/mine.json   # your own triplets"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset",
        required=True,
        choices=("fashioniq", "cirr", "shoes", "fashion200k", "mit_states", "custom"),
    )
    parser.add_argument(
        "--root",
        required=True,
        metavar="DIR",
        help="dataset root (captions/; Shoes: relative_captions_shoes.json; Fashion200k: labels/; "
        "MIT-States: images/; custom: the triplets JSONL file)",
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
    parser.add_argument(
        "--tokenizer",
        default="artemis",
        choices=("artemis", "tirg"),
        help="artemis (default: ARTEMIS / CMAP / MANME) or tirg (TIRG's SimpleVocab: ASCII, punctuation "
        "stripped, sorted words, <UNK> = 0)",
    )


def run(args: argparse.Namespace) -> int:
    from coir.datasets.vocab import LEADING_WORDS, Vocabulary, dataset_captions

    captions = dataset_captions(args.dataset, args.root, args.split)
    # the leading words are ARTEMIS's: TIRG's Fashion200k vocabulary has only the descriptions' words
    leading = LEADING_WORDS.get(args.dataset, ()) if args.tokenizer == "artemis" else ()
    vocab = Vocabulary.from_captions(captions, args.threshold, leading, args.tokenizer)
    path = vocab.save(args.out)
    specials = vocab.special_tokens
    print(
        f"{args.dataset} vocabulary ({args.tokenizer} tokenizer) from {len(captions):,} {args.split} "
        f"captions: {len(vocab):,} entries = {vocab.num_words:,} words + {len(specials)} special "
        f"tokens ({' '.join(specials)}); written to {path}"
    )
    return 0
