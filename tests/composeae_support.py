"""A tiny random BERT folder for the ComposeAE tests (config + weights + a WordPiece tokenizer), written
by the test itself: nothing downloads."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from coir.pipeline.models.composeae.text import write_random_bert

WORDS = [
    "replace red with blue", "a long sleeve red dress", "blue skirt", "green top with pockets",
    "black pants", "white jacket", "yellow striped shirt", "ripe sliced fruit",
]  # fmt: skip


def tiny_bert(folder: Path, texts: Iterable[str] = WORDS, hidden: int = 24, layers: int = 2) -> Path:
    """A random BertModel (hidden `hidden`, `layers` layers, seed 0) and its tokenizer in `folder`."""
    return write_random_bert(folder, texts, hidden, layers, vocab_size=120)
