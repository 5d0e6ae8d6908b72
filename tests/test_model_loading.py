"""Loud loading: a checkpoint without tokenizer files, a BLIP checkpoint of another architecture, options
that cannot apply to a checkpoint and a deliberate partial load (model.allow_partial)."""

from __future__ import annotations

import logging

import pytest
import torch

from coir.common.errors import ConfigError
from coir.pipeline.models.blip.config import BlipModelConfig
from coir.pipeline.models.blip.tokenizer import train_wordpiece
from coir.pipeline.models.registry import build_model

TEXTS = ["the circle is red", "make the square blue", "add a green triangle"]


def tiny_blip_config(vocab: int = 90):
    from transformers import BlipConfig

    vision = dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        image_size=16, patch_size=8,
    )  # fmt: skip
    text = dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        vocab_size=vocab, max_position_embeddings=32, bos_token_id=None, sep_token_id=None, eos_token_id=None,
    )  # fmt: skip
    return BlipConfig(text_config=text, vision_config=vision, image_text_hidden_size=16)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from transformers import BlipForConditionalGeneration, BlipForImageTextRetrieval

    root = tmp_path_factory.mktemp("ckpts")
    tok = train_wordpiece(TEXTS * 5, root / "tok", vocab_size=80)
    torch.manual_seed(0)
    BlipForImageTextRetrieval(tiny_blip_config()).save_pretrained(root / "retrieval")
    BlipForConditionalGeneration(tiny_blip_config()).save_pretrained(root / "captioning")
    return root, tok


def test_checkpoint_without_tokenizer_files_names_them_and_the_remedy(folders):
    root, tok = folders
    with pytest.raises(ConfigError) as error:
        build_model(BlipModelConfig(pretrained=str(root / "retrieval")))
    message = str(error.value)
    assert "model.pretrained" in message and "vocab.txt" in message and "model.tokenizer=" in message
    model = build_model(BlipModelConfig(pretrained=str(root / "retrieval"), tokenizer=str(tok)))
    assert len(model.tokenizer) > 20  # the trained WordPiece, not a fallback of special tokens


def test_an_empty_tokenizer_folder_is_an_error(tmp_path):
    (tmp_path / "tok").mkdir()
    with pytest.raises(ConfigError, match="model.tokenizer.*no tokenizer files"):
        build_model(BlipModelConfig(tokenizer=str(tmp_path / "tok")))


def test_checkpoint_of_another_architecture_stops_naming_missing_keys(folders, caplog):
    root, tok = folders
    config = BlipModelConfig(pretrained=str(root / "captioning"), tokenizer=str(tok))
    with caplog.at_level(logging.WARNING), pytest.raises(ConfigError) as error:
        build_model(config)
    message = str(error.value)
    assert "captioning" in message and "missing keys" in message and "text_encoder.embeddings" in message
    assert "model.allow_partial" in message
    assert "text_decoder" in caplog.text  # the unused captioning decoder is reported as unexpected


def test_allow_partial_loads_and_lists_what_stays_random(folders, caplog):
    from safetensors.torch import load_file

    root, tok = folders
    config = BlipModelConfig(pretrained=str(root / "captioning"), tokenizer=str(tok), allow_partial=True)
    with caplog.at_level(logging.WARNING):
        model = build_model(config)
    assert "partial load" in caplog.text and "vision_proj.weight" in caplog.text
    saved = load_file(str(root / "captioning" / "model.safetensors"))
    # what the checkpoint has (the vision tower) is loaded exactly
    name = "vision_model.embeddings.patch_embedding.weight"
    torch.testing.assert_close(model.state_dict()[name], saved[name], rtol=0, atol=0)


@pytest.mark.parametrize(
    ("option", "key"),
    [({"preset": "base"}, "model.preset"), ({"projection_dim": 64}, "model.projection_dim")],
)
def test_options_that_cannot_apply_to_a_checkpoint_name_the_key(folders, option, key):
    root, tok = folders
    with pytest.raises(ConfigError, match=key):
        build_model(BlipModelConfig(pretrained=str(root / "retrieval"), tokenizer=str(tok), **option))
    # restating the checkpoint's own value is accepted
    model = build_model(
        BlipModelConfig(pretrained=str(root / "retrieval"), tokenizer=str(tok), projection_dim=16)
    )
    assert model.vision_proj.out_features == 16


def test_composeae_bert_folder_without_tokenizer_is_an_error(tmp_path):
    from transformers import BertConfig, BertModel

    from coir.pipeline.models.composeae.text import load_tokenizer

    BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(tmp_path / "bert")  # fmt: skip
    with pytest.raises(ConfigError, match="no tokenizer files"):
        load_tokenizer(tmp_path / "bert")
