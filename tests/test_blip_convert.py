"""`coir convert`: an original BLIP / LAVIS retrieval .pth (made here from a tiny HF model whose weights are
renamed back to the original layout, plus momentum copies and queues) -> the HF folder model.pretrained
loads, every tensor exactly as it was."""

from __future__ import annotations

import json
import re

import pytest
import torch

from coir.common.errors import DataFormatError
from coir.pipeline.cli import main
from coir.pipeline.models.blip.config import BlipModelConfig
from coir.pipeline.models.blip.tokenizer import train_wordpiece
from coir.pipeline.models.registry import build_model
from tests.test_model_loading import TEXTS, tiny_blip_config

# HF BlipForImageTextRetrieval name -> original BLIP name (salesforce/BLIP models/vit.py, blip_retrieval.py)
TO_ORIGINAL = [
    ("vision_model.embeddings.class_embedding", "visual_encoder.cls_token"),
    ("vision_model.embeddings.position_embedding", "visual_encoder.pos_embed"),
    ("vision_model.embeddings.patch_embedding.", "visual_encoder.patch_embed.proj."),
    ("vision_model.post_layernorm.", "visual_encoder.norm."),
    ("vision_model.encoder.layers.", "visual_encoder.blocks."),
    (".layer_norm1.", ".norm1."),
    (".layer_norm2.", ".norm2."),
    (".self_attn.qkv.", ".attn.qkv."),
    (".self_attn.projection.", ".attn.proj."),
]


LEARNED_TEMP = 0.0421  # not BLIP's initial 0.07: the converted model must start from this one


def original_name(hf_key: str) -> str:
    for new, old in TO_ORIGINAL:
        hf_key = hf_key.replace(new, old)
    return hf_key


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """(path of the .pth, the HF state dict it was made from, the training-state keys it adds)."""
    from transformers import BlipForImageTextRetrieval

    root = tmp_path_factory.mktemp("blip_original")
    torch.manual_seed(1)
    hf_state = {k: v.clone() for k, v in BlipForImageTextRetrieval(tiny_blip_config()).state_dict().items()}
    state = {original_name(k): v for k, v in hf_state.items()}
    assert not any(k.startswith("vision_model") for k in state)
    momentum = {}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        if head in ("visual_encoder", "text_encoder", "vision_proj", "text_proj"):
            momentum[f"{head}_m.{rest}"] = value + 1.0  # distinct values: a mix-up would show
    training = {
        "image_queue": torch.randn(16, 8),
        "text_queue": torch.randn(16, 8),
        "idx_queue": torch.full((1, 8), -100),
        "ptr_queue": torch.zeros(1, dtype=torch.long),
        "temp": torch.tensor(LEARNED_TEMP),
        "text_encoder.embeddings.position_ids": torch.arange(32)[None],
    }
    path = root / "model_base_retrieval_coco.pth"
    torch.save({"model": state | momentum | training}, path)
    tok = train_wordpiece(TEXTS * 5, root / "tok", vocab_size=80)
    return path, hf_state, (set(momentum) | set(training)) - {"temp"}, tok


def test_convert_round_trips_every_tensor_and_lists_what_it_drops(original, tmp_path, capsys):
    from safetensors.torch import load_file

    path, hf_state, training_keys, tok = original
    out = tmp_path / "converted"
    assert main(["convert", str(path), "--tokenizer", str(tok), "--out", str(out)]) == 0
    saved = load_file(str(out / "model.safetensors"))
    assert set(saved) == set(hf_state)
    for key, value in hf_state.items():
        assert torch.equal(saved[key], value), key
    card = json.loads((out / "coir_card.json").read_text())
    assert set(card["convert"]["dropped"]) == training_keys
    assert card["sources"]["source"]["sha256"] and card["sources"]["source"]["method"] == "sha256"
    config = json.loads((out / "config.json").read_text())
    assert config["vision_config"]["image_size"] == 16 and config["vision_config"]["num_hidden_layers"] == 1
    # the converted folder is what model.pretrained loads, tokenizer included
    model = build_model(BlipModelConfig(pretrained=str(out)))
    assert torch.equal(model.vision_proj.weight, hf_state["vision_proj.weight"])
    assert len(model.tokenizer) > 20
    # BLIP's learned temperature is kept (transformers' model has no place for it) and used by default
    assert card["convert"]["temperature"] == pytest.approx(LEARNED_TEMP)
    assert model.temperature().item() == pytest.approx(LEARNED_TEMP)
    explicit = build_model(BlipModelConfig(pretrained=str(out), temperature=0.05))
    assert explicit.temperature().item() == pytest.approx(0.05)


def test_a_checkpoint_of_another_layout_is_refused_naming_its_keys(original, tmp_path):
    path, _, _, _ = original
    state = torch.load(path, weights_only=True)["model"]
    state["text_decoder.bert.embeddings.word_embeddings.weight"] = torch.zeros(3, 4)
    bad = tmp_path / "captioning.pth"
    torch.save({"model": state}, bad)
    with pytest.raises(DataFormatError, match=re.escape("text_decoder.bert.embeddings")):
        from coir.pipeline.models.blip.convert import convert_checkpoint

        convert_checkpoint(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()
