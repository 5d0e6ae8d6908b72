"""The Pic2Word family on a tiny random open_clip (ViT + text transformer; nothing downloads): the mapping
network against the reference's IM2TEXT, the pseudo word spliced where the prompt's * stands, the training
prompt, the symmetric loss with CLIP's temperature, gradients into the mapping only, the baselines,
prompts per benchmark, exports and the local checkpoints (open_clip CLIP, the reference's mapping)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from coir.common.errors import ConfigError
from coir.pipeline.models.export import load_export, read_meta, save_export
from coir.pipeline.models.pic2word.config import Pic2WordModelConfig
from coir.pipeline.models.pic2word.model import ImageOnly, Pic2Word, TextOnly
from coir.pipeline.models.pic2word.processor import POSITION
from coir.pipeline.models.registry import build_model, derive_baseline

TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 48, "heads": 2, "layers": 2},
}
CAPTIONS = ["is red and longer", "has no sleeves", "two dogs instead"]
UNUSED_TOKEN = 49000  # a vocabulary entry none of these texts uses


def tiny(**options) -> Pic2Word:
    torch.manual_seed(0)
    return build_model({"family": "pic2word", "clip_config": TINY_CLIP, "hidden_dim": 24} | options)


def query_batch(model: Pic2Word, prompt: str | None = "a photo of * , {caption}") -> dict[str, torch.Tensor]:
    texts = [prompt.replace("{caption}", c) if prompt else c for c in CAPTIONS]
    images = torch.randn(len(texts), 3, 32, 32, generator=torch.Generator().manual_seed(1))
    return {"query_image": images, **model.processor().text(texts)}


def encode_with_vocabulary_token(
    model: Pic2Word, ids: torch.Tensor, words: torch.Tensor, positions
) -> torch.Tensor:
    """The same text with the word as an entry of the vocabulary: UNUSED_TOKEN's embedding set to each
    row's word and written at the row's position (no splicing involved)."""
    out = []
    for row, word, position in zip(ids, words, positions, strict=True):
        with torch.no_grad():
            model.clip.token_embedding.weight[UNUSED_TOKEN] = word
        row = row.clone()
        row[position] = UNUSED_TOKEN
        out.append(model.clip.encode_text(row[None]))
    return torch.cat(out)


def test_mapping_is_the_references_im2text():
    """Linear -> Dropout -> ReLU per block, then fc_out, under the reference's parameter names."""
    model = tiny().eval()
    mapping = model.mapping
    assert [name for name, _ in mapping.named_parameters()] == [
        "layers.0.0.weight", "layers.0.0.bias", "layers.1.0.weight", "layers.1.0.bias", "fc_out.weight",
        "fc_out.bias",
    ]  # fmt: skip
    assert (
        mapping.layers[0][0].in_features == 32 and mapping.fc_out.out_features == 48
    )  # embed -> token width
    x = torch.randn(5, 32)
    hidden = F.relu(mapping.layers[0][0](x))
    hidden = F.relu(mapping.layers[1][0](hidden))
    torch.testing.assert_close(mapping(x), mapping.fc_out(hidden))
    assert [type(m).__name__ for m in mapping.layers[0]] == ["Linear", "Dropout", "ReLU"]
    assert mapping.layers[0][1].p == 0.1


def test_splicing_the_placeholders_own_embedding_is_plain_clip_text():
    model = tiny().eval()
    batch = query_batch(model)
    ids, positions = batch["input_ids"], batch[POSITION]
    own = model.clip.token_embedding.weight[ids[torch.arange(3), positions]]
    with torch.no_grad():
        spliced = model.composed_text(torch.zeros(3, 32), ids, positions)  # mapping output ignored below
        from coir.pipeline.models.pic2word.model import words_spliced

        with words_spliced(model.clip, own, positions):
            same = model.clip.encode_text(ids)
        torch.testing.assert_close(same, model.clip.encode_text(ids))
        assert not torch.allclose(spliced, model.clip.encode_text(ids))  # a mapped word changes the text


def test_query_is_the_prompt_with_the_mapped_reference_in_place_of_the_star():
    model = tiny().eval()
    batch = query_batch(model)
    assert batch[POSITION].tolist() == [4, 4, 4]  # <start> a photo of *
    with torch.no_grad():
        words = model.mapping(model.clip.encode_image(batch["query_image"]))
        expected = encode_with_vocabulary_token(model, batch["input_ids"], words, batch[POSITION])
        query = model.encode_query(batch)
    torch.testing.assert_close(query, F.normalize(expected, dim=-1), atol=1e-5, rtol=1e-5)
    assert query.shape == (3, 32)
    # the reference image decides the query: other images, other queries
    with torch.no_grad():
        other = model.encode_query(batch | {"query_image": batch["query_image"].flip(0)})
    assert not torch.allclose(other, query)


def test_training_prompt_is_the_word_inserted_before_the_end_of_a_photo_of():
    """The reference appends the word after "a photo of" (before its end token); coir overwrites the * of
    "a photo of *": the same token sequence."""
    model = tiny()
    tokenizer = model.processor().tokenizer()
    plain = tokenizer(["a photo of"])[0]
    end = int((plain == 49407).nonzero()[0])
    assert model.train_position.tolist() == [end]
    ids = model.train_ids[0]
    assert ids[:end].tolist() == plain[:end].tolist() and ids[end + 1 :].tolist() == plain[end:-1].tolist()


def test_loss_is_the_symmetric_contrastive_loss_at_clips_temperature():
    model = tiny().eval()  # eval: no dropout, so the loss can be recomputed
    images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        with torch.no_grad():
            model.clip.logit_scale.fill_(2.0)
        features = model.clip.encode_image(images)
        ids = model.processor().text(["a photo of *"] * 4)
        text = F.normalize(model.composed_text(features, ids["input_ids"], ids[POSITION]), dim=-1)
        logits = torch.exp(torch.tensor(2.0)) * F.normalize(features, dim=-1) @ text.T
        expected = (F.cross_entropy(logits, torch.arange(4)) + F.cross_entropy(logits.T, torch.arange(4))) / 2
        losses = model.loss({"image": images})
    torch.testing.assert_close(losses["loss"], expected)
    torch.testing.assert_close(losses["loss"], (losses["image_to_text"] + losses["text_to_image"]) / 2)


def test_gradients_reach_the_mapping_only_and_clip_stays_in_eval_mode():
    model = tiny().train()
    model.loss({"image": torch.randn(4, 3, 32, 32)})["loss"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.mapping.parameters())
    assert all(p.grad is None and not p.requires_grad for p in model.clip.parameters())
    assert not model.clip.training and model.mapping.training
    batch = query_batch(model)
    torch.manual_seed(3)
    first = model.encode_query(batch)
    assert not torch.allclose(first, model.encode_query(batch))  # dropout acts in training mode only
    model.eval()
    torch.testing.assert_close(model.encode_query(batch), model.encode_query(batch))


def test_bf16_weights_and_batches_train():
    """DeepSpeed's bf16 (GPU runs): the whole model and the batch's floats in bf16."""
    model = tiny().to(torch.bfloat16).train()
    loss = model.loss({"image": torch.randn(4, 3, 32, 32, dtype=torch.bfloat16)})["loss"]
    loss.backward()
    assert torch.isfinite(loss) and model.mapping.fc_out.weight.grad.abs().sum() > 0


def test_baselines_are_the_reference_image_and_the_caption_alone():
    model = tiny().eval()
    image_only, text_only = (derive_baseline(model, kind) for kind in ("image-only", "text-only"))
    assert isinstance(image_only, ImageOnly) and isinstance(text_only, TextOnly)
    assert image_only.clip is model.clip and image_only.query_prompt("cirr") is None
    batch = query_batch(text_only, prompt=None)  # the captions alone: no pseudo word needed
    assert POSITION not in batch
    with torch.no_grad():
        torch.testing.assert_close(image_only.encode_query(batch), model.encode_target(batch["query_image"]))
        raw = model.clip.encode_text(model.processor().tokenizer()(CAPTIONS))
        torch.testing.assert_close(text_only.encode_query(batch), F.normalize(raw, dim=-1))
    with pytest.raises(ConfigError, match="nothing to train"):
        image_only.loss({"image": batch["query_image"]})


def test_prompts_per_benchmark():
    model = tiny()
    assert model.query_prompt("cirr") == "a photo of * , {caption}"
    assert model.query_prompt("fashioniq") == "a photo of * , {caption}"
    assert model.query_prompt("circo") == "a photo of * that {caption}"
    assert model.query_prompt("shoes") == model.query_prompt(None) == "a photo of * , {caption}"
    custom = tiny(prompts={"cirr": "a sketch of * that {caption}"}, prompt="* {caption}")
    assert (
        custom.query_prompt("cirr") == "a sketch of * that {caption}"
        and custom.query_prompt("x") == "* {caption}"
    )


@pytest.mark.parametrize(
    "options, key",
    [
        ({"prompts": {"cirr": "a photo of *"}}, "model.prompts.cirr"),  # no {caption}
        ({"prompts": {"cirr": "a photo of *, {caption}"}}, "model.prompts.cirr"),  # "*," is another token
        ({"train_prompt": "a photo"}, "model.train_prompt"),
        ({"pseudo_word": "zebrafishes"}, "model.pseudo_word"),  # not one token
        ({"image_transform": "squash"}, "model.image_transform"),
    ],
)
def test_bad_prompts_and_options_name_the_key(options, key):
    if options.get("pseudo_word"):
        prompts = {name: "zebrafishes {caption}" for name in ("cirr", "fashioniq", "circo")}
        options |= {"train_prompt": "a zebrafishes", "prompt": "zebrafishes {caption}", "prompts": prompts}
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        tiny(**options)


def test_a_query_text_without_the_pseudo_word_is_refused():
    with pytest.raises(ConfigError, match="no pseudo word"):
        tiny().processor().text(["a photo of * , red", "is red"])


def test_export_round_trip_for_the_model_and_a_baseline(tmp_path):
    model = tiny(prompts={"cirr": "a sketch of * , {caption}"}).eval()
    batch = query_batch(model)
    meta = read_meta(save_export(model, tmp_path / "export"))
    assert meta["family"] == "pic2word" and meta["config"]["model"]["clip_config"] == TINY_CLIP
    loaded = load_export(tmp_path / "export")
    assert isinstance(loaded, Pic2Word) and loaded.query_prompt("cirr") == "a sketch of * , {caption}"
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_query(batch), model.encode_query(batch))
        torch.testing.assert_close(
            loaded.encode_target(batch["query_image"]), model.encode_target(batch["query_image"])
        )
    save_export(derive_baseline(model, "text-only"), tmp_path / "text")
    assert isinstance(load_export(tmp_path / "text"), TextOnly)


def test_local_clip_and_reference_mapping_checkpoints_are_loaded(tmp_path):
    source = tiny()
    with torch.no_grad():
        source.mapping.fc_out.bias.add_(1.0)  # "trained"
    clip_file, mapping_file = tmp_path / "clip.pt", tmp_path / "pic2word.pt"
    state = source.clip.state_dict()
    state["logit_scale"] = state["logit_scale"].reshape(())  # open_clip checkpoints hold a scalar
    torch.save(state, clip_file)
    # the reference's checkpoint (src/main.py): DDP-prefixed keys under state_dict_img2text
    mapping = {f"module.{k}": v for k, v in source.mapping.state_dict().items()}
    torch.save({"epoch": 30, "name": "run", "state_dict_img2text": mapping}, mapping_file)
    torch.manual_seed(123)  # another random initialisation, replaced by the checkpoints
    files = {"clip_pretrained": str(clip_file), "mapping_pretrained": str(mapping_file)}
    loaded = build_model({"family": "pic2word", "clip_config": TINY_CLIP, "hidden_dim": 24} | files)
    for name, value in source.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value, msg=name)
    with pytest.raises(ConfigError, match="model.mapping_pretrained.*wrong shapes"):
        build_model({"family": "pic2word", "clip_config": TINY_CLIP, "hidden_dim": 16,
                     "mapping_pretrained": str(mapping_file)})  # fmt: skip


def test_frozen_image_features_stand_in_for_images():
    model = tiny().eval()
    batch = query_batch(model)
    part = model.frozen_image_features()
    features = part.module(batch["query_image"])
    with torch.no_grad():
        from_features = {k: v for k, v in batch.items() if k != "query_image"} | {"query_feature": features}
        torch.testing.assert_close(model.encode_query(from_features), model.encode_query(batch))
        torch.testing.assert_close(
            model.encode_target_features(features), model.encode_target(batch["query_image"])
        )


def test_config_defaults_are_the_references():
    cfg = Pic2WordModelConfig()
    assert (cfg.hidden_dim, cfg.layers, cfg.dropout) == (512, 2, 0.1)  # --middle_dim, --n-layer, --droprate
    assert (cfg.clip_model, cfg.image_transform, cfg.train_prompt) == (
        "ViT-L-14-quickgelu",
        "clip",
        "a photo of *",
    )
    assert cfg.prompts["cirr"] == "a photo of * , {caption}"  # src/data.py CIRR


def test_zero_shot_fashioniq_config_is_the_references_protocol():
    from coir.common.config import load_config
    from coir.eval.config import EvalConfig, check_eval_config

    path = Path(__file__).resolve().parents[1] / "configs" / "zeroshot" / "pic2word_fashioniq.yaml"
    config = load_config(EvalConfig, path, ["checkpoint=x"])
    check_eval_config(config)
    assert config.options["fashioniq"]["caption_template"] == "{c2} and {c1}" and not config.mask_reference
