"""GloVe word vectors from a local text file, into an `nn.Embedding` indexed by a word vocabulary.

The reference (naver/artemis encoders.py `EncoderText.init_weights`) loads torchtext's
GloVe 840B.300d and copies the vector of every vocabulary entry found; entries not found keep
nn.Embedding's N(0, 1) init. Without GloVe it uses xavier_uniform_ for the whole table. Here the
text file (`word v1 … v300` a line, as published) is streamed and only the vocabulary's words are
kept, so the 5.6 GB 840B file costs one pass and a few MB of memory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from coir.common.errors import DataFormatError, MissingInputError

log = logging.getLogger(__name__)

GLOVE_DIM = 300  # glove.840B.300d, the reference's `--word_dim` default


@dataclass(frozen=True)
class GloveCoverage:
    """How much of a vocabulary a GloVe file covers (special tokens counted, as the reference)."""

    found: int
    total: int
    missing: tuple[str, ...]

    @property
    def share(self) -> float:
        return self.found / self.total if self.total else 0.0


def _is_number(token: bytes) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def read_glove(path: str | Path, words: Iterable[str], dim: int = GLOVE_DIM) -> dict[str, torch.Tensor]:
    """{word: float tensor [dim]} for the given words found in a GloVe text file (first occurrence).

    Every line's value count is checked (a wrong `dim` fails on line 1, naming the file and line);
    values are parsed only for the kept words. A word may contain spaces (840B has a few, such as
    ". . ."): the last `dim` fields are the vector, unless the extra fields are numbers too, which
    means the vectors are longer than `dim`."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(path, "GloVe file")
    wanted = {word.encode(): word for word in words}
    found: dict[str, torch.Tensor] = {}
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip()
            if not line:
                continue
            values = line.count(b" ")
            if values < dim:
                raise DataFormatError(
                    path, f"line {lineno}: expected a word and {dim} values, found {values}"
                )
            if values == dim:
                word = line[: line.index(b" ")]
            else:
                word = line.rsplit(b" ", dim)[0]
                if all(_is_number(t) for t in word.split(b" ")[1:]):
                    raise DataFormatError(path, f"line {lineno}: {values} values, expected {dim}")
            if word not in wanted or wanted[word] in found:
                continue
            fields = line.rsplit(b" ", dim)
            try:
                found[wanted[word]] = torch.tensor([float(v) for v in fields[1:]], dtype=torch.float32)
            except ValueError:
                bad = next(v for v in fields[1:] if not _is_number(v))
                raise DataFormatError(
                    path, f"line {lineno}: value {bad.decode(errors='replace')!r} is not a number"
                ) from None
    return found


def load_glove_(embedding: nn.Embedding, words: Sequence[str], path: str | Path) -> GloveCoverage:
    """Copy the GloVe vector of `words[i]` into row i of `embedding` (in place); rows of words not
    in the file keep their current values. Logs the share of the vocabulary covered."""
    if len(words) != embedding.num_embeddings:
        raise ValueError(f"{len(words)} words for an embedding of {embedding.num_embeddings} rows")
    vectors = read_glove(path, words, embedding.embedding_dim)
    with torch.no_grad():
        for i, word in enumerate(words):
            if word in vectors:
                embedding.weight[i] = vectors[word]
    coverage = GloveCoverage(len(vectors), len(words), tuple(w for w in words if w not in vectors))
    log.info(
        "GloVe %s: %d/%d vocabulary entries found (%.1f%%); %d keep their random init",
        path,
        coverage.found,
        coverage.total,
        100 * coverage.share,
        len(coverage.missing),
    )
    return coverage


def word_embedding(
    words: Sequence[str], dim: int = GLOVE_DIM, glove_path: str | Path | None = None
) -> tuple[nn.Embedding, GloveCoverage | None]:
    """An nn.Embedding [len(words), dim] as the reference builds it: GloVe rows where the word is in
    the file and N(0, 1) elsewhere; without a GloVe file, xavier_uniform_ throughout.
    `words` is the vocabulary in id order (`Vocabulary.words`)."""
    embedding = nn.Embedding(len(words), dim)
    if glove_path is None:
        nn.init.xavier_uniform_(embedding.weight)
        return embedding, None
    return embedding, load_glove_(embedding, words, glove_path)
