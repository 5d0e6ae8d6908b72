"""The CLIP4Cir family on a tiny random open_clip (ViT + text transformer; nothing downloads): the
Combiner's equation against a plain re-implementation, shapes, gradients with CLIP frozen and tuned,
the zero-shot sum (and `coir eval` of its export), exports, local checkpoints, frozen features,
stage 2 from stage 1, and the reference's TargetPad."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from lasco_fixture import run_command
from learning_support import evaluate_fashioniq
from PIL import Image
from synth_fixture import built_world

from coir.pipeline.models.clip4cir.config import Clip4CirModelConfig
from coir.pipeline.models.clip4cir.model import Clip4Cir
from coir.pipeline.models.components.clip_processor import pad_to_ratio
from coir.pipeline.models.export import load_export, read_meta, save_export
from coir.pipeline.models.registry import build_model

REPO = Path(__file__).resolve().parents[1]
TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def tiny(**options) -> Clip4Cir:
    torch.manual_seed(0)
    values = {"family": "clip4cir", "clip_config": TINY_CLIP, "projection_dim": 24, "hidden_dim": 40}
    return build_model(values | options)


def batch(model: Clip4Cir, n: int = 3) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    texts = ["is red and longer", "has no sleeves", "darker with a print", "is blue"][:n]
    return {
        "query_image": torch.randn(n, 3, 32, 32, generator=generator),
        "target_image": torch.randn(n, 3, 32, 32, generator=generator),
        **model.processor().text(texts),
    }


def combiner_by_hand(model: Clip4Cir, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """src/combiner.py's combine_features written out from the weights (eval mode: no dropout)."""
    c = model.combiner

    def linear(layer, x):
        return x @ layer.weight.T + layer.bias

    projected = torch.cat(
        [linear(c.text_projection, text).clamp(min=0), linear(c.image_projection, image).clamp(min=0)], -1
    )
    hidden = linear(c.combiner_layer, projected).clamp(min=0)
    gate_hidden = linear(c.dynamic_scalar[0], projected).clamp(min=0)
    lam = 1 / (1 + torch.exp(-linear(c.dynamic_scalar[3], gate_hidden)))
    out = linear(c.output_layer, hidden) + lam * text + (1 - lam) * image
    return out / out.norm(dim=-1, keepdim=True)


def test_combiner_follows_the_reference_equation_and_shapes():
    model = tiny().eval()
    data = batch(model)
    with torch.no_grad():
        image = model.clip.encode_image(data["query_image"])
        text = model.clip.encode_text(data["input_ids"])
        query = model.encode_query(data)
        targets = model.encode_target(data["target_image"])
        raw_targets = model.clip.encode_image(data["target_image"])
    assert query.shape == (3, 32) and targets.shape == (3, 32)
    torch.testing.assert_close(query, combiner_by_hand(model, image, text), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(query.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(targets, raw_targets / raw_targets.norm(dim=-1, keepdim=True))
    # dropout (p = 0.5) acts in training mode only
    model.train()
    torch.manual_seed(5)
    assert not torch.allclose(model.encode_query(data), query)


def test_loss_is_the_scaled_cross_entropy_over_the_batch():
    model = tiny().eval()
    data = batch(model)
    with torch.no_grad():
        logits = 100.0 * model.encode_query(data) @ model.encode_target(data["target_image"]).T
        expected = -torch.log_softmax(logits, dim=1).diagonal().mean()
        assert torch.isclose(model.loss(data)["loss"], expected, atol=1e-5)


@pytest.mark.parametrize("mode", ["combiner", "sum"])
def test_bf16_weights_and_batches_train(mode):
    """DeepSpeed's bf16 (GPU runs): weights and the batch's float tensors in bf16, float32 features inside."""
    model = tiny(mode=mode, freeze_clip=False).to(torch.bfloat16).train()
    data = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in batch(model).items()}
    loss = model.loss(data)["loss"]
    loss.backward()
    assert torch.isfinite(loss) and model.clip.visual.conv1.weight.grad.abs().sum() > 0


def test_frozen_clip_gets_no_gradients_and_the_combiner_does():
    model = tiny(freeze_clip=True).train()
    model.loss(batch(model))["loss"].backward()
    assert all(p.grad is None for p in model.clip.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.combiner.parameters())
    assert not model.clip.visual.training and not model.clip.transformer.training  # frozen: eval mode


def test_tuned_clip_gets_gradients_in_both_towers():
    model = tiny(freeze_clip=False).train()
    model.loss(batch(model))["loss"].backward()
    assert model.clip.visual.conv1.weight.grad.abs().sum() > 0
    assert model.clip.token_embedding.weight.grad.abs().sum() > 0
    assert model.clip.logit_scale.grad is None and not model.clip.logit_scale.requires_grad
    assert model.frozen_image_features() is None


def test_text_encoder_only_tuning_keeps_the_image_tower_a_frozen_part():
    """clip_encoders: text (the CVPRW 2022 paper's stage 1): gradients into the text tower only."""
    model = tiny(mode="sum", freeze_clip=False, clip_encoders="text").train()
    model.loss(batch(model))["loss"].backward()
    assert model.clip.token_embedding.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.clip.visual.parameters())
    assert not model.clip.visual.training and model.clip.transformer.training
    assert model.frozen_image_features() is not None


def test_zero_shot_sum_is_the_normalised_sum_of_raw_features():
    model = tiny(mode="sum").eval()
    data = batch(model)
    assert model.combiner is None
    assert not any(p.requires_grad for p in model.parameters())  # frozen CLIP: nothing to train
    with torch.no_grad():
        raw = model.clip.encode_image(data["query_image"]) + model.clip.encode_text(data["input_ids"])
        torch.testing.assert_close(model.encode_query(data), raw / raw.norm(dim=-1, keepdim=True))


def test_derived_sum_baseline_of_a_combiner_model_is_its_towers_in_sum_mode():
    from coir.pipeline.models.registry import derive_baseline

    combiner = tiny(mode="combiner").eval()
    data = batch(combiner)
    summed = tiny(mode="sum").eval()  # the same seed: the same CLIP weights, no Combiner
    derived = derive_baseline(combiner, "sum")
    with torch.no_grad():
        torch.testing.assert_close(derived.encode_query(data), summed.encode_query(data))
        assert not torch.allclose(derived.encode_query(data), combiner.encode_query(data), atol=1e-3)
        torch.testing.assert_close(
            derived.encode_target(data["target_image"]), combiner.encode_target(data["target_image"])
        )


def test_a_derived_baseline_exports_and_loads_as_itself(tmp_path):
    """An image-only / sum CLIP4Cir written as an export comes back as that baseline, not as the fused
    model (its name picks the class), with the same queries."""
    from coir.pipeline.models.export import load_export, save_export
    from coir.pipeline.models.registry import derive_baseline

    combiner = tiny(mode="combiner").eval()
    data = batch(combiner)
    for kind in ("image-only", "sum"):
        derived = derive_baseline(combiner, kind)
        loaded = load_export(save_export(derived, tmp_path / kind)).eval()
        assert (type(loaded), loaded.name) == (type(derived), kind)
        with torch.no_grad():
            torch.testing.assert_close(loaded.encode_query(data), derived.encode_query(data))


def test_frozen_features_stand_in_for_images():
    model = tiny(freeze_clip=True).eval()
    data = batch(model)
    part = model.frozen_image_features()
    assert part is not None and tiny(freeze_clip=True).frozen_image_features().identity == part.identity
    features = {
        "query_feature": part.module(data["query_image"]),
        "target_feature": part.module(data["target_image"]),
    }
    with torch.no_grad():
        from_features = {"input_ids": data["input_ids"], **features}
        torch.testing.assert_close(model.encode_query(from_features), model.encode_query(data))
        torch.testing.assert_close(
            model.encode_target_features(features["target_feature"]),
            model.encode_target(data["target_image"]),
        )
        torch.testing.assert_close(model.loss(from_features)["loss"], model.loss(data)["loss"])


def test_export_round_trip_rebuilds_from_the_saved_architecture(tmp_path):
    model = tiny().eval()
    data = batch(model)
    out = save_export(model, tmp_path / "export")
    meta = read_meta(out)
    assert meta["family"] == "clip4cir" and meta["config"]["model"]["clip_config"] == TINY_CLIP
    assert meta["config"]["model"]["clip_pretrained"] is None
    loaded = load_export(out)
    assert isinstance(loaded, Clip4Cir) and loaded.processor() == model.processor()
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_query(data), model.encode_query(data))
        torch.testing.assert_close(
            loaded.encode_target(data["target_image"]), model.encode_target(data["target_image"])
        )


def test_local_open_clip_checkpoint_is_loaded(tmp_path):
    source = tiny()
    path = tmp_path / "clip.pt"
    state = source.clip.state_dict()
    state["logit_scale"] = state["logit_scale"].reshape(())  # open_clip checkpoints hold a scalar
    torch.save(state, path)
    torch.manual_seed(123)  # another random initialisation, replaced by the checkpoint
    loaded = build_model({"family": "clip4cir", "clip_config": TINY_CLIP, "clip_pretrained": str(path),
                          "projection_dim": 24, "hidden_dim": 40})  # fmt: skip
    for name, value in source.clip.state_dict().items():
        torch.testing.assert_close(loaded.clip.state_dict()[name], value, msg=name)


def test_stage_two_combiner_starts_from_a_stage_one_sum_export(tmp_path):
    stage1 = tiny(mode="sum", freeze_clip=False)
    with torch.no_grad():
        stage1.clip.visual.conv1.weight.add_(1.0)  # "fine-tuned"
    export = save_export(stage1, tmp_path / "stage1")
    stage2 = build_model({"family": "clip4cir", "init_from": str(export), "mode": "combiner",
                          "projection_dim": 24, "hidden_dim": 40})  # fmt: skip
    assert stage2.cfg.freeze_clip and stage2.combiner is not None
    torch.testing.assert_close(stage2.clip.visual.conv1.weight, stage1.clip.visual.conv1.weight)


def test_target_pad_matches_the_reference():
    # 100 x 150: ratio 1.5 >= 1.25, padded to a width of 150 / 1.25 = 120, int(20 / 2) = 10 per side
    assert pad_to_ratio(Image.new("RGB", (100, 150), "white"), 1.25).size == (120, 150)
    assert pad_to_ratio(Image.new("RGB", (100, 110)), 1.25).size == (100, 110)  # 1.1 < 1.25: unchanged
    padded = pad_to_ratio(Image.new("RGB", (60, 20), "white"), 1.0)  # SquarePad: black, evenly
    assert padded.size == (60, 60) and padded.getpixel((0, 0)) == (0, 0, 0)
    assert padded.getpixel((30, 30)) == (255, 255, 255)


def test_tokenizer_is_open_clips_bundled_bpe():
    ids = tiny().processor().text(["a red dress", " ".join(["long"] * 40)])["input_ids"]
    assert ids.shape == (2, 16) and ids.dtype == torch.long
    assert ids[0, :5].tolist() == [49406, 320, 736, 2595, 49407]  # <start> a red dress <end>
    assert ids[1, -1].item() == 49407  # truncated, still ended


def test_zero_shot_sum_export_from_coir_export_evaluates_with_coir_eval(tmp_path_factory, tmp_path):
    """`coir export RECIPE model.mode=sum` writes the untrained zero-shot model; `coir eval` ranks with it."""
    world = built_world(tmp_path_factory)
    overrides = ["model.mode=sum", "model.freeze_clip=true"]
    argv = [
        str(REPO / "configs" / "methods" / "clip4cir_tiny.yaml"),
        *overrides,
        "--out",
        str(tmp_path / "sum"),
    ]
    assert run_command("coir.pipeline.export_cli", argv) == 0
    loaded = load_export(tmp_path / "sum")
    assert isinstance(loaded, Clip4Cir) and loaded.combiner is None
    results = evaluate_fashioniq(tmp_path / "sum", world / "fashioniq", "{c1} and {c2}")
    overall = results["fashioniq/val"]["clip4cir"]
    assert overall["queries"] == 72 and 0 <= overall["R@10"] <= overall["R@50"] <= 100


@pytest.mark.parametrize(
    "key, value", [("mode", "concat"), ("image_transform", "crop"), ("clip_encoders", "neither")]
)
def test_unknown_choices_name_the_key(key, value):
    from coir.common.errors import ConfigError

    with pytest.raises(ConfigError, match=f"model.{key}"):
        tiny(**{key: value})


def test_config_defaults_are_the_references():
    cfg = Clip4CirModelConfig()
    assert (cfg.projection_dim, cfg.hidden_dim, cfg.logit_scale, cfg.dropout) == (2560, 5120, 100.0, 0.5)
    assert (cfg.clip_model, cfg.image_transform, cfg.target_ratio) == ("RN50x4", "targetpad", 1.25)


def test_frozen_clip_features_are_precomputed_and_cached(tmp_path_factory, tmp_path):
    """`coir data features` stores the frozen CLIP's features under its identity; `coir eval` caches them
    per identity and ranks the same from the cache."""
    from coir.eval.api import evaluate
    from coir.eval.config import EvalConfig

    world = built_world(tmp_path_factory)
    recipe = [str(REPO / "configs" / "methods" / "clip4cir_tiny.yaml"), "model.freeze_clip=true"]
    shards = [
        "fashioniq",
        "--root",
        str(world / "fashioniq"),
        "--split",
        "train",
        "--out",
        str(tmp_path / "s"),
    ]
    assert run_command("coir.datasets.shards.cli", [*shards, "--size", "32", "--no-progress"]) == 0
    features = ["--shards", str(tmp_path / "s" / "triplets"), "--out", str(tmp_path / "f"), "--device", "cpu"]
    assert run_command("coir.pipeline.features_cli", [*recipe, *features, "--no-progress"]) == 0
    assert run_command("coir.pipeline.export_cli", [*recipe, "--out", str(tmp_path / "export")]) == 0
    stored = json.loads((tmp_path / "f" / "manifest.json").read_text())["features"]["identity"]
    assert stored == load_export(tmp_path / "export").frozen_image_features().identity
    assert json.loads(stored)["features"] == "open_clip encode_image, raw features"

    results = []
    for cache in (False, True, True):
        config = EvalConfig(
            checkpoint=str(tmp_path / "export"), benchmark="fashioniq", split="val", device="cpu",
            data_root=str(world / "fashioniq"), num_workers=0, cache=cache, cache_dir=str(tmp_path / "cache"),
            pictures=False,
        )  # fmt: skip
        results.append(evaluate(tmp_path / "export", config).fragment["fashioniq/val"]["clip4cir"])
    assert results[0] == results[1] == results[2]
    assert any((tmp_path / "cache").glob("features-*.pt"))  # the frozen part's features, cached
