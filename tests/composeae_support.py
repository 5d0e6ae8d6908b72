"""A tiny random BERT folder for the ComposeAE tests (config + weights + a WordPiece tokenizer), written
by the test itself: nothing downloads."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

WORDS = [
    "replace red with blue", "a long sleeve red dress", "blue skirt", "green top with pockets",
    "black pants", "white jacket", "yellow striped shirt", "ripe sliced fruit",
]  # fmt: skip


def tiny_bert(folder: Path, texts: Iterable[str] = WORDS, hidden: int = 24, layers: int = 2) -> Path:
    """A random BertModel (hidden `hidden`, `layers` layers, seed 0) and its tokenizer in `folder`."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from coir.pipeline.models.blip.tokenizer import train_wordpiece

    train_wordpiece(list(texts) * 3, folder, vocab_size=120)
    vocab = len(AutoTokenizer.from_pretrained(str(folder)))
    config = BertConfig(
        vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=2 * hidden, max_position_embeddings=64,
    )  # fmt: skip
    torch.manual_seed(0)
    BertModel(config).save_pretrained(str(folder))
    return folder
