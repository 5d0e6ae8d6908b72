"""The CASE temperature: BLIP's initial 0.07 without a checkpoint that has one; kept from a coir export or
a converted original BLIP checkpoint (tests/test_blip_convert.py) unless model.temperature overrides it.
And BLIP's text handling: pre_caption and the token limit."""

from __future__ import annotations

import json

import pytest
import torch

from coir.common.errors import DataFormatError
from coir.pipeline.models.blip.config import BlipModelConfig
from coir.pipeline.models.blip.parts import TEMPERATURE_FILE
from coir.pipeline.models.blip.processor import pre_caption
from coir.pipeline.models.blip.tokenizer import train_wordpiece
from coir.pipeline.models.export import save_export
from coir.pipeline.models.registry import build_model
from tests.test_model_loading import TEXTS, tiny_blip_config

LEARNED = 0.0237


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return str(train_wordpiece(TEXTS * 5, tmp_path_factory.mktemp("tok") / "tok", vocab_size=80))


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory, tok):
    from transformers import BlipForImageTextRetrieval

    folder = tmp_path_factory.mktemp("hf") / "retrieval"
    torch.manual_seed(0)
    BlipForImageTextRetrieval(tiny_blip_config()).save_pretrained(folder)
    return folder


def test_without_a_learned_temperature_it_starts_at_blips_initial_value(tok, hf_folder):
    assert build_model(BlipModelConfig(tokenizer=tok)).temperature().item() == pytest.approx(0.07)
    # a Hugging Face BlipForImageTextRetrieval folder holds no temperature
    model = build_model(BlipModelConfig(pretrained=str(hf_folder), tokenizer=tok))
    assert model.temperature().item() == pytest.approx(0.07)


def test_a_checkpoint_temperature_file_is_used_unless_overridden(tok, hf_folder, tmp_path):
    import shutil

    folder = tmp_path / "with_temp"
    shutil.copytree(hf_folder, folder)
    (folder / TEMPERATURE_FILE).write_text(json.dumps({"temperature": LEARNED}))
    kept = build_model(BlipModelConfig(pretrained=str(folder), tokenizer=tok))
    assert kept.temperature().item() == pytest.approx(LEARNED)
    fixed = build_model(BlipModelConfig(pretrained=str(folder), tokenizer=tok, learnable_temperature=False))
    assert fixed.temperature().item() == pytest.approx(LEARNED)
    assert "temp" not in dict(fixed.named_parameters())
    override = build_model(BlipModelConfig(pretrained=str(folder), tokenizer=tok, temperature=0.1))
    assert override.temperature().item() == pytest.approx(0.1)
    (folder / TEMPERATURE_FILE).write_text(json.dumps({"temperature": "cold"}))
    with pytest.raises(DataFormatError, match="temperature"):
        build_model(BlipModelConfig(pretrained=str(folder), tokenizer=tok))


@pytest.mark.parametrize("learnable", [True, False])
def test_init_from_an_export_keeps_its_temperature(tok, tmp_path, learnable):
    source = build_model(BlipModelConfig(tokenizer=tok, temperature=LEARNED, learnable_temperature=learnable))
    export = save_export(source, tmp_path / "export")
    kept = build_model(BlipModelConfig(init_from=str(export)))
    assert kept.temperature().item() == pytest.approx(LEARNED)
    override = build_model(BlipModelConfig(init_from=str(export), temperature=0.09))
    assert override.temperature().item() == pytest.approx(0.09)


def test_pre_caption_cleans_and_truncates_like_blip(tok):
    assert pre_caption("Make it RED!  (and shiny)...", 30) == "make it red and shiny"
    assert pre_caption("one two three four", 2) == "one two"
    cfg = BlipModelConfig(tokenizer=tok, max_words=3, max_length=35)
    proc = build_model(cfg).processor()
    enc = proc.text(["The circle is red, make the square blue"])
    assert enc["input_ids"].shape == (1, 35)
    assert int(enc["attention_mask"].sum()) == 3 + 2  # three words + [CLS] and [SEP]


def test_an_export_is_rebuilt_empty_and_filled_with_its_own_weights(tok, tmp_path):
    from coir.pipeline.models.export import load_export

    torch.manual_seed(3)
    source = build_model(BlipModelConfig(tokenizer=tok, learnable_temperature=False))
    export = save_export(source, tmp_path / "export")
    loaded = load_export(export)
    tensors = [*loaded.parameters(), *loaded.buffers()]
    assert tensors and not any(t.is_meta for t in tensors)
    for (name, a), (_, b) in zip(source.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
