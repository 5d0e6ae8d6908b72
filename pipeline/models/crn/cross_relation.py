"""CRN's cross relations (yan9qu/crn model.py `local_conv`, `global_conv`; blocks.py `Inception1d/2d`).

Inputs: the region map M [B, C, h, w] (C = map_dim), the word features W [B, L, d] (d = the LSTM's
size) and the word mask [B, L] (True on real words). V = Conv1x1(M) [B, d, h·w].

Local (region-to-text): every region attends over the words, A = softmax_words(Wᵀ V / T_local);
the sentence seen from region r is s_r = Σ_l A[l, r] W_l. γ, β = Inception2d([V; s]) [B, C, h, w];
the query map is γ ⊙ M + β.

Global (text-to-region): every word attends over the regions, A = softmax_regions(W V / T_global);
the image seen from word l is v_l = Σ_r A[l, r] V_r. γ, β = Inception1d([Wᵀ; v]) [B, d, L]; the
query sequence is γ ⊙ v + β.

The reference's LSTM runs over its padded batch and attends to (and pools) the padding steps too;
here padding is masked out of the softmax, zeroed after every layer of the 1d Inception blocks and
left out of their average pool and of the final pooling, so in evaluation a query does not depend on
the other sentences of its batch (in training BatchNorm's statistics still see the batch).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


def _conv_bn(conv: type[nn.Module], bn: type[nn.Module], cin: int, cout: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(conv(cin, cout, kernel, padding=kernel // 2, bias=False), bn(cout), nn.ReLU())


def _widths(out_dim: int, fractions: tuple[float, float, float]) -> tuple[int, int, int, int]:
    """Four branch widths summing to out_dim, the first three the given fractions of it."""
    first = [max(1, round(out_dim * f)) for f in fractions]
    return (*first, max(1, out_dim - sum(first)))  # type: ignore[return-value]


class Inception(nn.Module):
    """The reference's Inception block, 1d or 2d (conv + BN + ReLU, no bias): branches 1x1; 1x1 → 3;
    1x1 → 3 → 3; 3-avgpool → 1x1, concatenated. The reference's widths (in 2048: 2d 640/512/512/384,
    inner 512 and 224; 1d 384/256/256/128) are kept as fractions so any in/out size works."""

    def __init__(self, in_dim: int, out_dim: int, dims: int) -> None:
        super().__init__()
        conv, bn, pool = (
            (nn.Conv1d, nn.BatchNorm1d, nn.AvgPool1d)
            if dims == 1
            else (nn.Conv2d, nn.BatchNorm2d, nn.AvgPool2d)
        )
        fractions = (3 / 8, 1 / 4, 1 / 4) if dims == 1 else (5 / 16, 1 / 4, 1 / 4)
        w0, w1, w2, w3 = _widths(out_dim, fractions)
        inner, middle = max(1, in_dim // 4), max(1, round(in_dim * 7 / 64))
        self.branch0 = nn.Sequential(_conv_bn(conv, bn, in_dim, w0, 1))
        self.branch1 = nn.Sequential(_conv_bn(conv, bn, in_dim, inner, 1), _conv_bn(conv, bn, inner, w1, 3))
        self.branch2 = nn.Sequential(
            _conv_bn(conv, bn, in_dim, inner, 1),
            _conv_bn(conv, bn, inner, middle, 3),
            _conv_bn(conv, bn, middle, w2, 3),
        )
        self.branch3 = nn.Sequential(
            pool(3, stride=1, padding=1, count_include_pad=False), _conv_bn(conv, bn, in_dim, w3, 1)
        )

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """keep [B, 1, L] (1d only): 1 on real positions. Padding is zeroed after every layer and left
        out of the average pool, so a real position sees what it would see without the padding (the
        convolutions' own zero padding); BatchNorm's training statistics still count the zeros."""
        if keep is None:
            return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], dim=1)
        outs = []
        for branch in (self.branch0, self.branch1, self.branch2, self.branch3):
            y = x * keep
            for layer in branch:
                y = layer(y) / layer(keep).clamp(min=1e-6) if isinstance(layer, nn.AvgPool1d) else layer(y)
                y = y * keep
            outs.append(y)
        return torch.cat(outs, dim=1)


class LocalRelation(nn.Module):
    """Region-to-text attention -> (γ ⊙ M + β, γ, β), each [B, C, h, w]."""

    def __init__(self, map_dim: int, text_dim: int, temperature: float) -> None:
        super().__init__()
        self.project = nn.Conv2d(map_dim, text_dim, kernel_size=1, bias=False)
        self.temperature = temperature
        self.gamma = Inception(2 * text_dim, map_dim, dims=2)
        self.beta = Inception(2 * text_dim, map_dim, dims=2)

    def forward(
        self, regions: torch.Tensor, words: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, _, h, w = regions.shape
        visual = self.project(regions).flatten(2)  # [B, d, hw]
        logits = (words @ visual / self.temperature).masked_fill(~mask[:, :, None], float("-inf"))
        attention = logits.softmax(dim=1)  # over the words, for each region
        sentences = words.transpose(1, 2) @ attention  # [B, d, hw]
        both = torch.cat([visual, sentences], dim=1).view(b, -1, h, w)
        gamma, beta = self.gamma(both), self.beta(both)
        return gamma * regions + beta, gamma, beta


class GlobalRelation(nn.Module):
    """Text-to-region attention -> (γ ⊙ v + β, γ, β), each [B, d, L] (zero at padding)."""

    def __init__(self, map_dim: int, text_dim: int, temperature: float) -> None:
        super().__init__()
        self.project = nn.Conv2d(map_dim, text_dim, kernel_size=1, bias=False)
        self.temperature = temperature
        self.gamma = Inception(2 * text_dim, text_dim, dims=1)
        self.beta = Inception(2 * text_dim, text_dim, dims=1)

    def forward(
        self, regions: torch.Tensor, words: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        visual = self.project(regions).flatten(2)  # [B, d, hw]
        attention = (words @ visual / self.temperature).softmax(dim=-1)  # over the regions, per word
        seen = (attention @ visual.transpose(1, 2)).transpose(1, 2)  # [B, d, L]
        keep = mask[:, None, :].to(seen.dtype)
        seen = seen * keep
        both = torch.cat([words.transpose(1, 2) * keep, seen], dim=1)
        gamma, beta = self.gamma(both, keep), self.beta(both, keep)
        return (gamma * seen + beta) * keep, gamma, beta


class GeM(nn.Module):
    """Generalised-mean pooling over H x W with a learned p (the reference's blocks.py GeM, p = 3):
    (mean(clamp(x, eps) ** p)) ** (1 / p), [B, C, H, W] -> [B, C]. p has shape [1] for DeepSpeed."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.full((1,), float(p)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(min=self.eps).pow(self.p).mean(dim=(2, 3)).pow(1.0 / self.p)


def masked_gem(x: torch.Tensor, mask: torch.Tensor, p: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """GeM over the last axis of x [B, C, L] at the positions mask [B, L] keeps -> [B, C]."""
    keep = mask[:, None, :].to(x.dtype)
    powered = x.clamp(min=eps).pow(p) * keep
    return (powered.sum(dim=-1) / keep.sum(dim=-1).clamp(min=1)).pow(1.0 / p)


class WordLSTM(nn.Module):
    """The reference's TextLSTMModel: word embeddings -> one LSTM layer, every step's output a word
    feature [B, L, hidden], L the batch's longest sentence, as the reference's (packed: padding never
    enters the recurrence; zero at padding)."""

    def __init__(self, vocab_size: int, word_dim: int, hidden: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, word_dim)
        self.lstm = nn.LSTM(word_dim, hidden, batch_first=True)

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        lengths = lengths.detach().to("cpu", torch.int64).clamp(min=1)
        packed = pack_padded_sequence(
            self.embedding(input_ids), lengths, batch_first=True, enforce_sorted=False
        )
        steps, _ = pad_packed_sequence(
            self.lstm(packed)[0], batch_first=True, total_length=int(lengths.max())
        )
        return steps


def word_mask(lengths: torch.Tensor, length: int) -> torch.Tensor:
    """[B, length] bool, True on each sentence's first `lengths` positions (at least one)."""
    return torch.arange(length, device=lengths.device)[None] < lengths.clamp(min=1)[:, None]
