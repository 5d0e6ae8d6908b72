"""Export round trip, loading a local Hugging Face BLIP retrieval checkpoint, derived baselines, errors."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from coir.common.errors import ConfigError, DataFormatError, MissingInputError
from coir.pipeline.models.blip.config import BlipModelConfig
from coir.pipeline.models.blip.tokenizer import train_wordpiece
from coir.pipeline.models.export import load_export, save_export
from coir.pipeline.models.registry import build_model, derive_baseline

TEXTS = ["the circle is red", "make the square blue", "add a green triangle", "remove the small star"]
SIZE = 32


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    return str(train_wordpiece(TEXTS * 5, tmp_path_factory.mktemp("tok") / "tok", vocab_size=80))


@pytest.fixture(scope="module")
def case(tok_dir):
    torch.manual_seed(0)
    return build_model(BlipModelConfig(tokenizer=tok_dir, image_size=SIZE, symmetric=True)).eval()


def batch_of(model, n: int = 3) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return {
        "query_image": torch.randn(n, 3, SIZE, SIZE, generator=g),
        "target_image": torch.randn(n, 3, SIZE, SIZE, generator=g),
        **model.processor().text(TEXTS[:n]),
    }


def embeddings(model, b):
    with torch.no_grad():
        return (
            model.encode_query(b),
            model.encode_target(b["target_image"]),
        )


@pytest.mark.parametrize("kind", ["case", "image-only", "text-only", "sum"])
def test_export_round_trip_gives_identical_embeddings(case, kind, tmp_path):
    model = case if kind == "case" else derive_baseline(case, kind)
    with torch.no_grad():
        model.temp.fill_(0.05)
    save_export(model, tmp_path / "exp")
    assert {p.name for p in (tmp_path / "exp").iterdir()} == {
        "model.safetensors",
        "coir_model.json",
        "coir_card.json",
        "tokenizer",
    }
    meta = json.loads((tmp_path / "exp" / "coir_model.json").read_text())
    assert meta["name"] == kind and meta["config"]["model"]["symmetric"] is True
    loaded = load_export(tmp_path / "exp")
    assert loaded.name == kind and not loaded.training
    b = batch_of(model)
    for a, c in zip(embeddings(model, b), embeddings(loaded, b), strict=True):
        assert torch.equal(a, c)
    assert loaded.temp.item() == pytest.approx(0.05)
    assert torch.equal(
        loaded.processor().text(TEXTS)["input_ids"], model.processor().text(TEXTS)["input_ids"]
    )


def test_derived_baselines_reuse_case_weights(case):
    b = batch_of(case)
    image_only, text_only = derive_baseline(case, "image-only"), derive_baseline(case, "text-only")
    with torch.no_grad():
        # image-only: the query is CASE's target embedding of the reference image
        torch.testing.assert_close(
            image_only.encode_query(b),
            case.encode_target(b["query_image"]),
        )
        # text-only: CASE's text encoder over the text, no image ([CLS] kept), CASE's text projection
        hidden = case.text_encoder(
            input_ids=b["input_ids"], attention_mask=b["attention_mask"]
        ).last_hidden_state
        torch.testing.assert_close(
            text_only.encode_query(b),
            F.normalize(case.text_proj(hidden[:, 0]), dim=-1),
        )
        # sum: the normalised sum of the two single-modality queries (BLIP's unit ITC embeddings)
        summed = image_only.encode_query(b) + text_only.encode_query(b)
        torch.testing.assert_close(derive_baseline(case, "sum").encode_query(b), F.normalize(summed, dim=-1))
        for model in (image_only, text_only, derive_baseline(case, "sum")):
            torch.testing.assert_close(
                model.encode_target(b["target_image"]), case.encode_target(b["target_image"])
            )
    # copies, not shared modules
    assert (
        image_only.vision_model.embeddings.patch_embedding.weight.data_ptr()
        != case.vision_model.embeddings.patch_embedding.weight.data_ptr()
    )
    with pytest.raises(ConfigError, match="baseline"):
        derive_baseline(case, "audio-only")


def test_loads_a_local_blip_retrieval_checkpoint(tmp_path):
    from transformers import BlipConfig, BlipForImageTextRetrieval

    ckpt = tmp_path / "blip-itm-tiny"
    train_wordpiece(TEXTS * 5, ckpt, vocab_size=80)  # the tokenizer saved alongside, as on the Hub
    vision = dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=SIZE,
        patch_size=8,
        initializer_range=0.02,
    )
    text = dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        vocab_size=90,
        max_position_embeddings=64,
        bos_token_id=None,
        sep_token_id=None,
        eos_token_id=None,
    )
    torch.manual_seed(0)
    hf = BlipForImageTextRetrieval(
        BlipConfig(text_config=text, vision_config=vision, image_text_hidden_size=32)
    )
    hf.save_pretrained(ckpt)
    hf.eval()

    model = build_model(BlipModelConfig(pretrained=str(ckpt))).eval()
    assert model.image_size == SIZE and len(model.tokenizer) == len(
        build_model(BlipModelConfig(pretrained=str(ckpt), tokenizer=str(ckpt))).tokenizer
    )
    b = batch_of(model)
    with torch.no_grad():
        vision_tokens = hf.vision_model(pixel_values=b["target_image"]).last_hidden_state
        expected_target = F.normalize(hf.vision_proj(vision_tokens[:, 0]), dim=-1)
        torch.testing.assert_close(model.encode_target(b["target_image"]), expected_target)
        # the query: HF's image-grounded text encoder with [ENC] first, cross-attending to the reference
        ids = b["input_ids"].clone()
        ids[:, 0] = model.tokenizer.convert_tokens_to_ids("[ENC]")
        ref_tokens = hf.vision_model(pixel_values=b["query_image"]).last_hidden_state
        hidden = hf.text_encoder(
            input_ids=ids,
            attention_mask=b["attention_mask"],
            encoder_hidden_states=ref_tokens,
            encoder_attention_mask=torch.ones(ref_tokens.shape[:2], dtype=torch.long),
        )
        expected_query = F.normalize(hf.text_proj(hidden.last_hidden_state[:, 0]), dim=-1)
        torch.testing.assert_close(model.encode_query(b), expected_query)


def test_config_errors_name_the_key(tok_dir, tmp_path):
    with pytest.raises(ConfigError, match="model.tokenizer"):
        build_model(BlipModelConfig())
    with pytest.raises(MissingInputError, match="tokenizer"):
        build_model(BlipModelConfig(tokenizer=str(tmp_path / "nope")))
    with pytest.raises(MissingInputError, match="nope"):
        build_model(BlipModelConfig(pretrained=str(tmp_path / "nope")))
    with pytest.raises(ConfigError, match="model.preset"):
        build_model(BlipModelConfig(tokenizer=tok_dir, preset="huge"))
    with pytest.raises(ConfigError, match="model.name"):
        build_model(BlipModelConfig(tokenizer=tok_dir, name="tirg-x"))


def test_load_export_names_what_is_wrong(case, tmp_path):
    with pytest.raises(MissingInputError, match="nope"):
        load_export(tmp_path / "nope")
    d = save_export(case, tmp_path / "exp")
    (d / "model.safetensors").rename(d / "moved")
    with pytest.raises(MissingInputError, match="model.safetensors"):
        load_export(d)
    (d / "moved").write_bytes(b"not safetensors")
    (d / "moved").rename(d / "model.safetensors")
    with pytest.raises(DataFormatError, match="model.safetensors"):
        load_export(d)
    (d / "coir_model.json").write_text('{"family": "blip", "name": "case"}')
    with pytest.raises(DataFormatError, match="coir_model.json.*config"):
        load_export(d)
    (d / "coir_model.json").write_text('{"name": "case", "config": {}}')
    with pytest.raises(DataFormatError, match="coir_model.json.*family"):
        load_export(d)
    (d / "coir_model.json").write_text('{"family": "no-such", "name": "case", "config": {"model": {}}}')
    with pytest.raises(ConfigError, match="no-such.*choose from.*blip"):
        load_export(d)
    (d / "coir_model.json").write_text('{"family": "blip", "name": "artemis", "config": {"model": {}}}')
    with pytest.raises(DataFormatError, match="'artemis' is not a model of the blip family"):
        load_export(d)
    (d / "coir_model.json").write_text("{")
    with pytest.raises(DataFormatError, match="coir_model.json"):
        load_export(d)


def test_init_from_a_coir_export_starts_finetuning_from_its_weights(case, tmp_path):
    with torch.no_grad():
        case.temp.fill_(0.042)
    export = save_export(case, tmp_path / "pretrained")
    finetune = build_model(
        BlipModelConfig(init_from=str(export), freeze_vision=True, reverse_weight=0.0)
    ).eval()
    b = batch_of(case)
    for mine, theirs in zip(embeddings(finetune, b), embeddings(case, b), strict=True):
        assert torch.equal(mine, theirs)
    assert finetune.temp.item() == pytest.approx(0.042)
    assert finetune.cfg.reverse_weight == 0.0
    assert not any(p.requires_grad for n, p in finetune.named_parameters() if n.startswith("vision_model."))
    image_only = build_model(BlipModelConfig(name="image-only", init_from=str(export))).eval()
    with torch.no_grad():
        reference_as_target = case.encode_target(b["query_image"])
        query = image_only.encode_query(b)
    assert torch.allclose(query, reference_as_target, atol=1e-6)


def test_init_from_and_pretrained_are_exclusive(tmp_path):
    with pytest.raises(ConfigError, match="init_from"):
        build_model(BlipModelConfig(init_from=str(tmp_path), pretrained=str(tmp_path)))
    with pytest.raises(MissingInputError):
        build_model(BlipModelConfig(init_from=str(tmp_path / "missing")))
