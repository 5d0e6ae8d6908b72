"""Pic2Word's input pipeline: CLIP's image transform and open_clip's tokenizer (components.clip_processor),
plus where each text's pseudo word stands, so the model can put the mapped image there."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from coir.common.errors import ConfigError
from coir.pipeline.models.components.clip_processor import ClipProcessor

POSITION = "pseudo_word_position"  # the batch field: index of the pseudo word in each row of input_ids


@dataclass
class PseudoWordProcessor(ClipProcessor):
    """text: {"input_ids": [B, context_length], POSITION: [B]}, the position of the first pseudo-word
    token of each text (the prompts place it first, as the reference's do). A text without it is an error.
    pseudo_word None (the baselines): input_ids only."""

    pseudo_word: str | None = "*"

    def pseudo_word_id(self) -> int:
        ids = self.tokenizer().encode(self.pseudo_word)
        if len(ids) != 1:
            raise ConfigError(
                f"key 'model.pseudo_word': {self.pseudo_word!r} is {len(ids)} tokens of open_clip's "
                "vocabulary; it must be one (e.g. *, $)"
            )
        return int(ids[0])

    def text(self, texts: list[str]) -> dict[str, torch.Tensor]:
        input_ids = self.tokenizer()(texts).long()
        if self.pseudo_word is None:
            return {"input_ids": input_ids}
        found = input_ids == self.pseudo_word_id()
        for i in torch.nonzero(~found.any(dim=1)).flatten().tolist():
            raise ConfigError(
                f"query text {texts[i]!r} has no pseudo word {self.pseudo_word!r} standing alone within "
                f"the first {self.context_length} tokens: the prompt must place it, with spaces around it "
                "(model.prompts, model.prompt, or coir eval --query-prompt)"
            )
        return {"input_ids": input_ids, POSITION: found.long().argmax(dim=1)}
