"""Recurrent sentence encoders over word ids (naver/artemis encoders.py `EncoderText`).

Inputs: `input_ids` long [B, L] padded with <pad> = 0 and `lengths` long [B] (the count of real
tokens, <start> and <end> included, as `WordProcessor.text` gives them). Output: [B, embed_dim].
Sequences are packed by length, so padding never enters the recurrence and the output of a
sentence does not depend on how much padding it carries or on the other sentences of the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


def _pack(embedded: torch.Tensor, lengths: torch.Tensor) -> nn.utils.rnn.PackedSequence:
    lengths = lengths.detach().to("cpu", torch.int64)  # pack_padded_sequence wants them on the CPU
    if lengths.dim() != 1 or lengths.numel() != embedded.shape[0]:
        raise ValueError(f"lengths must be [B] = [{embedded.shape[0]}], got {list(lengths.shape)}")
    if lengths.numel() and (int(lengths.min()) < 1 or int(lengths.max()) > embedded.shape[1]):
        raise ValueError(f"lengths must lie in 1..{embedded.shape[1]}, got {lengths.tolist()}")
    return pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)


class BiGRUEncoder(nn.Module):
    """ARTEMIS / CMAP default text encoder: one bidirectional GRU layer of embed_dim // 2 units per
    direction (256 for the papers' 512) over the word embeddings; the final hidden states of the
    forward and backward directions are concatenated ([forward, backward]) and L2-normalised. No
    dropout (as the reference)."""

    def __init__(self, embedding: nn.Embedding, embed_dim: int = 512, normalize: bool = True) -> None:
        super().__init__()
        if embed_dim % 2:
            raise ValueError(f"embed_dim must be even (two GRU directions), got {embed_dim}")
        self.embedding = embedding
        self.embed_dim = embed_dim
        self.normalize = normalize
        self.gru = nn.GRU(embedding.embedding_dim, embed_dim // 2, batch_first=True, bidirectional=True)

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        _, hidden = self.gru(_pack(self.embedding(input_ids), lengths))  # [2, B, H], batch order restored
        out = hidden.transpose(0, 1).reshape(input_ids.shape[0], self.embed_dim)
        return F.normalize(out, dim=-1) if self.normalize else out


class LSTMEncoder(nn.Module):
    """The reference's `--txt_enc_type lstm` (TIRG-style): one LSTM layer of hidden_dim units (1024),
    max over the time steps, dropout (p = 0.1), a linear layer to embed_dim, L2 normalisation.

    Unlike the reference, which takes the max over every padded step (so a sentence's output there
    depends on the longest sentence of its batch), only the real steps are pooled.

    output="last": TIRG's TextLSTMModel instead takes the LSTM output at each sentence's last real
    token (then dropout, linear; TIRG does not normalise: normalize=False)."""

    def __init__(
        self,
        embedding: nn.Embedding,
        embed_dim: int = 512,
        hidden_dim: int = 1024,
        dropout: float = 0.1,
        normalize: bool = True,
        output: str = "max",
    ) -> None:
        super().__init__()
        if output not in ("max", "last"):
            raise ValueError(f"output must be max or last, got {output!r}")
        self.embedding = embedding
        self.embed_dim = embed_dim
        self.normalize = normalize
        self.output = output
        self.lstm = nn.LSTM(embedding.embedding_dim, hidden_dim, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden_dim, embed_dim)

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed, (hidden, _) = self.lstm(_pack(self.embedding(input_ids), lengths))
        if self.output == "last":  # a packed sequence's final hidden state is its last real step's output
            pooled = hidden[-1]
        else:
            steps, _ = pad_packed_sequence(packed, batch_first=True, padding_value=float("-inf"))
            pooled = steps.max(dim=1).values
        out = self.fc(self.dropout(pooled))
        return F.normalize(out, dim=-1) if self.normalize else out
