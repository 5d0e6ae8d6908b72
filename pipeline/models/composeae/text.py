"""ComposeAE's text side: frozen BERT sentence features from a local Hugging Face folder, and the
processor that tokenises for it. bert-as-service (the reference's) pools with REDUCE_MEAN over one
hidden layer (default -2, the second-to-last), averaging every position its input mask marks: the
words and [CLS] / [SEP], not the padding."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from coir.common.errors import ConfigError, DataFormatError, MissingInputError
from coir.pipeline.models.components.processor import IMAGENET_MEAN, IMAGENET_STD
from coir.pipeline.models.pixels import normalize, square_passes_through, to_uint8

KEY = "model.text_model"


def _folder(path: str | Path | None, key: str) -> Path:
    if not path:
        raise ConfigError(f"key {key!r}: a local BERT folder (config, weights, tokenizer) is required")
    folder = Path(path)
    if not folder.is_dir():
        raise MissingInputError(folder, f"BERT folder ({key})")
    if not (folder / "config.json").is_file():
        raise MissingInputError(folder / "config.json", f"BERT config ({key})")
    return folder


def load_tokenizer(path: str | Path, key: str = KEY) -> Any:
    from transformers import AutoTokenizer

    from coir.pipeline.models.loading import require_tokenizer_files

    folder = require_tokenizer_files(_folder(path, key), key)
    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as e:
        raise DataFormatError(folder, f"no tokenizer could be loaded ({key}): {e}") from e


def load_bert(path: str | Path, key: str = KEY) -> nn.Module:
    """The pretrained BERT of a local folder; ConfigError naming any weight the encoder needs that the
    folder lacks (the pooler is unused and may be absent)."""
    from transformers import AutoModel

    from coir.pipeline.models.loading import check_keys

    folder = _folder(path, key)
    try:
        model, info = AutoModel.from_pretrained(str(folder), local_files_only=True, output_loading_info=True)
    except (OSError, ValueError) as e:
        raise DataFormatError(folder, f"no BERT weights could be loaded ({key}): {e}") from e
    missing = [k for k in info.get("missing_keys", []) if not k.startswith("pooler.")]
    mismatched = [str(k[0] if isinstance(k, tuple) else k) for k in info.get("mismatched_keys", ())]
    check_keys(folder, missing, info.get("unexpected_keys", ()), key=key, mismatched=mismatched)
    return model


def bert_from_config(folder: Path) -> nn.Module:
    """A BERT of the folder's config.json with random weights (an export's weights follow)."""
    from transformers import AutoConfig, AutoModel

    return AutoModel.from_config(AutoConfig.from_pretrained(str(_folder(folder, "export text_model"))))


def write_random_bert(
    folder: str | Path,
    texts: Iterable[str],
    hidden: int = 32,
    layers: int = 2,
    seed: int = 0,
    vocab_size: int = 1000,
) -> Path:
    """A random BertModel (hidden size `hidden`, `layers` layers, weights from `seed`) and a WordPiece
    tokenizer of at most `vocab_size` entries trained on `texts`, written to `folder` as a local Hugging
    Face folder that `model.text_model` accepts: the stand-in for a pretrained BERT in tests and the demo."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from coir.pipeline.models.blip.tokenizer import train_wordpiece

    train_wordpiece(list(texts) * 3, folder, vocab_size=vocab_size)
    vocab = len(AutoTokenizer.from_pretrained(str(folder), local_files_only=True))
    config = BertConfig(
        vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=2 * hidden, max_position_embeddings=64,
    )  # fmt: skip
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        BertModel(config).save_pretrained(str(folder))
    return Path(folder)


class FrozenBert(nn.Module):
    """BERT, never trained and always in eval mode: (input_ids, attention_mask) [B, L] -> [B, hidden],
    the masked mean of hidden layer `layer`."""

    def __init__(self, bert: nn.Module, layer: int = -2) -> None:
        super().__init__()
        layers = bert.config.num_hidden_layers
        if not -(layers + 1) <= layer <= layers:
            raise ConfigError(f"key 'model.text_layer': BERT has hidden states 0..{layers}, got {layer}")
        self.bert = bert.requires_grad_(False).eval()
        self.layer = layer
        self.dim = int(bert.config.hidden_size)

    def train(self, mode: bool = True) -> FrozenBert:
        return super().train(False)

    @torch.no_grad()
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        hidden = out.hidden_states[self.layer]
        mask = attention_mask.float().unsqueeze(-1)
        mean = (hidden.float() * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return mean.to(hidden.dtype)  # bf16 training: the layers after BERT hold bf16 weights too


@dataclass
class ComposeAEProcessor:
    """image: Resize(resize) + CenterCrop(image_size) + ImageNet normalisation (the reference's, no
    padding); text: BERT tokens padded to max_length, [CLS] ... [SEP] (bert-as-service truncates to
    max_seq_len likewise)."""

    tokenizer: Any  # a transformers tokenizer (picklable)
    max_length: int = 25
    image_size: int = 224
    resize: int = 224
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    _transform: Any = field(default=None, init=False, repr=False, compare=False)

    def transform(self) -> Any:
        if self._transform is None:
            from torchvision import transforms as T

            self._transform = T.Compose(
                [
                    T.Resize(self.resize),
                    T.CenterCrop(self.image_size),
                ]
            )
        return self._transform

    def image(self, image: Image.Image) -> torch.Tensor:
        """One PIL image -> uint8 tensor [3, image_size, image_size] (the host part; normalize runs on
        the device, see models/pixels.py)."""
        return to_uint8(self.transform()(image.convert("RGB")))

    def passes_through(self, width: int, height: int) -> bool:
        """Whether `image` leaves a decoded width x height image unchanged."""
        return self.resize == self.image_size and square_passes_through(self.image_size, width, height)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [B, 3, S, S] -> float32, ImageNet normalisation (the device part)."""
        return normalize(images, self.mean, self.std)

    def text(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Texts -> {"input_ids", "attention_mask"} long [B, max_length]."""
        enc = self.tokenizer(
            list(texts),
            padding="max_length",
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return {"input_ids": enc["input_ids"].long(), "attention_mask": enc["attention_mask"].long()}
