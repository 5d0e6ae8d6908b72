"""ComposeAE (pipeline/models/composeae/): the complex projection and the composition against plain
re-implementations, the frozen BERT's pooled features, the loss terms and their weights, gradients,
batch sizes, the self-contained export and the errors on bad inputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from composeae_support import tiny_bert
from torch import nn

from coir.common.errors import CoirError, ConfigError, MissingInputError
from coir.pipeline.models.composeae.model import ComplexProjection, ComposeAE
from coir.pipeline.models.export import load_export, save_export
from coir.pipeline.models.registry import build_model

TEXTS = ["a long sleeve red dress", "blue skirt", "replace red with blue", "black pants"]


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bert(tmp_path_factory.mktemp("bert") / "bert")


def tiny(bert: Path, **options: object) -> ComposeAE:
    base = {"family": "composeae", "text_model": str(bert), "embed_dim": 16, "image_size": 32, "resize": 32}
    model = build_model({**base, "conv_channels": 6, "conv_pool": 4, "max_length": 10, **options})
    assert isinstance(model, ComposeAE)
    return model


def batch_of(model: ComposeAE, size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    batch = model.processor().text([TEXTS[i % len(TEXTS)] for i in range(size)])
    for role in ("query_image", "target_image"):
        batch[role] = torch.randn(size, 3, 32, 32, generator=generator)
    return batch


def bn(x: torch.Tensor, layer: nn.BatchNorm1d) -> torch.Tensor:  # batch statistics, biased variance
    return (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + layer.eps) * layer.weight + layer.bias


def linear(x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    return x @ layer.weight.T + layer.bias


def mlp(x: torch.Tensor, seq: nn.Sequential) -> torch.Tensor:  # BN, ReLU, Lin, ReLU, Lin
    return linear(linear(bn(x, seq[0]).clamp(min=0), seq[2]).clamp(min=0), seq[4])


def randomise_norms(module: nn.Module) -> None:
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.BatchNorm1d):
                layer.weight.uniform_(0.5, 1.5)
                layer.bias.uniform_(-0.5, 0.5)


# ---- equations -------------------------------------------------------------------------------------
def test_complex_projection_and_its_conjugate_against_a_plain_reimplementation() -> None:
    torch.manual_seed(0)
    projection = ComplexProjection(6, 5, dropout=0.0).train()
    randomise_norms(projection)
    image, text = torch.randn(7, 6), torch.randn(7, 5)
    x = linear(linear(bn(image, projection.image[0]), projection.image[1]).clamp(min=0), projection.image[4])
    delta = linear(linear(bn(text, projection.text[0]), projection.text[1]).clamp(min=0), projection.text[3])
    got_x, got_delta, re, im = projection(image, text)
    torch.testing.assert_close(got_x, x)
    torch.testing.assert_close(got_delta, delta)
    # z = x e^{iδ}: Re = x cos δ, Im = x sin δ; |z| = |x|
    torch.testing.assert_close(re, x * torch.cos(delta))
    torch.testing.assert_close(im, x * torch.sin(delta))
    torch.testing.assert_close(re.square() + im.square(), x.square())
    _, _, re_conj, im_conj = projection(image, text, conjugate=True)
    torch.testing.assert_close(re_conj, re)
    torch.testing.assert_close(im_conj, -im)


def test_composition_against_a_plain_reimplementation(bert: Path) -> None:
    torch.manual_seed(1)
    model = tiny(bert, image_dropout=0.0).train()
    composer = model.composer
    randomise_norms(composer)
    with torch.no_grad():
        composer.a.copy_(torch.tensor([3.0, 0.5]))
    image, text = torch.randn(6, 16), torch.randn(6, model.text_encoder.dim)

    def project(p: ComplexProjection) -> tuple[torch.Tensor, ...]:
        x = linear(linear(bn(image, p.image[0]), p.image[1]).clamp(min=0), p.image[4])
        delta = linear(linear(bn(text, p.text[0]), p.text[1]).clamp(min=0), p.text[3])
        return x, delta, x * torch.cos(delta), x * torch.sin(delta)

    _, _, re, im = project(composer.project_linear)
    theta_linear = mlp(torch.cat([re, im], 1), composer.linear)
    x, delta, re, im = project(composer.project_conv)
    channels = torch.stack([x, delta, image, re, im], 1)  # [B, 5, D]
    conv = F.conv1d(channels, composer.conv.conv.weight, composer.conv.conv.bias, padding=1)  # [B, 6, 16]
    pooled = conv.reshape(6, 6, 4, 4).amax(-1)  # 16 -> 4 windows of 4
    theta_conv = mlp(pooled.flatten(1), composer.conv.mapping)
    torch.testing.assert_close(composer(image, text), 3.0 * theta_linear + 0.5 * theta_conv)


def test_initial_branch_weights_and_scale(bert: Path) -> None:
    model = tiny(bert)
    assert model.composer.a.tolist() == [10.0, 1.0]  # linear, conv
    assert model.scale().item() == 4.0
    assert "norm_scale" in dict(model.named_parameters())
    fixed = tiny(bert, learnable_scale=False, normalize_scale=2.0, linear_weight=3.0, conv_weight=2.0)
    assert "norm_scale" not in dict(fixed.named_parameters()) and fixed.scale().item() == 2.0
    assert fixed.composer.a.tolist() == [3.0, 2.0]


# ---- text ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layer", [-2, -1])
def test_text_feature_is_the_masked_mean_of_the_chosen_bert_layer(bert: Path, layer: int) -> None:
    model = tiny(bert, text_layer=layer)
    tokens = model.processor().text(["blue skirt", "a long sleeve red dress"])
    assert tokens["input_ids"].shape == (2, 10)
    features = model.text_encoder(tokens["input_ids"], tokens["attention_mask"])
    assert features.shape == (2, 24)
    for row in range(2):
        n = int(tokens["attention_mask"][row].sum())  # [CLS] words [SEP]
        out = model.text_encoder.bert(
            input_ids=tokens["input_ids"][row : row + 1, :n], output_hidden_states=True
        )
        torch.testing.assert_close(features[row], out.hidden_states[layer][0].mean(0))
    longer = tiny(bert, text_layer=layer, max_length=20).processor().text(["blue skirt"])
    padded = model.text_encoder(longer["input_ids"], longer["attention_mask"])
    torch.testing.assert_close(padded[0], features[0])  # padding does not change the feature


def test_bert_stays_frozen_and_in_eval_mode(bert: Path) -> None:
    model = tiny(bert).train()
    assert model.image_encoder.training and not model.text_encoder.bert.training
    assert not any(p.requires_grad for p in model.text_encoder.parameters())
    from coir.pipeline.engine import param_groups

    names = [n for group in param_groups(model, 1e-6) for n in group["names"]]
    assert names and not any(n.startswith("text_encoder.") for n in names)
    assert {"composer.a", "norm_scale", "text_decoder.4.weight"} <= set(names)


# ---- loss ------------------------------------------------------------------------------------------
def test_every_trainable_part_gets_gradients_and_bert_none(bert: Path) -> None:
    model = tiny(bert).train()
    model.loss(batch_of(model, 8))["loss"].backward()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    silent = [n for n, p in trainable.items() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not silent, silent
    assert all(p.grad is None for p in model.text_encoder.parameters())
    prefixes = {n.split(".")[0] for n in trainable}
    assert prefixes == {"image_encoder", "composer", "image_decoder", "text_decoder", "norm_scale"}


def test_loss_terms_and_their_weights_from_the_config(bert: Path) -> None:
    weights = {"image_reconstruction_weight": 0.5, "text_reconstruction_weight": 2.0, "symmetry_weight": 3.0}
    model = tiny(bert, image_dropout=0.0, **weights).train()
    batch = batch_of(model, 8)
    out = model.loss(batch)
    with torch.no_grad():
        source = model.image_encoder(batch["query_image"])
        target = model.image_encoder(batch["target_image"])
        text = model.text_encoder(batch["input_ids"], batch["attention_mask"])
        theta = model.composer(source, text)
        s = model.scale()

        def classification(q: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            logits = s * F.normalize(q, dim=-1) @ (s * F.normalize(t, dim=-1)).T
            return F.cross_entropy(logits, torch.arange(len(q)))

        base = classification(theta, target)
        image_rec = (model.image_decoder(theta) - source).square().mean()
        text_rec = (model.text_decoder(theta) - text).square().mean()
        # the target rotated back by the conjugate of the text should land on the reference
        symmetry = classification(model.composer(target, text, conjugate=True), source)
    torch.testing.assert_close(out["base"], base)
    torch.testing.assert_close(out["image_reconstruction"], image_rec)
    torch.testing.assert_close(out["text_reconstruction"], text_rec)
    torch.testing.assert_close(out["symmetry"], symmetry)
    torch.testing.assert_close(out["loss"].detach(), base + 0.5 * image_rec + 2.0 * text_rec + 3.0 * symmetry)
    assert not torch.allclose(symmetry, base)


def test_soft_triplet_on_a_hand_worked_case(bert: Path) -> None:
    model = tiny(bert, loss="soft_triplet", normalize_scale=1.0)
    queries = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    targets = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    # d(q0,t0) = 0.16 + 0.64 = 0.8, d(q0,t1) = 2; d(q1,t1) = 0, d(q1,t0) = 0.36 + 0.04 = 0.4
    expected = (
        torch.log1p(torch.exp(torch.tensor(0.8 - 2.0))) + torch.log1p(torch.exp(torch.tensor(-0.4)))
    ) / 2
    torch.testing.assert_close(model.objective(queries, targets), expected)


@pytest.mark.parametrize("size", [8, 20])
def test_training_batches_of_any_size(bert: Path, size: int) -> None:
    model = tiny(bert).train()
    out = model.loss(batch_of(model, size))
    assert out["loss"].isfinite() and out["loss"].ndim == 0
    out["loss"].backward()


def test_eval_shapes_with_a_batch_of_one(bert: Path) -> None:
    model = tiny(bert).eval()
    batch = batch_of(model, 1)
    with torch.no_grad():
        query, target = model.encode_query(batch), model.encode_target(batch["target_image"])
    assert query.shape == target.shape == (1, 16)
    torch.testing.assert_close(query.norm(dim=-1), torch.ones(1))
    torch.testing.assert_close(model.score(query, target), query @ target.T)


# ---- export ----------------------------------------------------------------------------------------
def test_export_is_self_contained_and_gives_the_same_embeddings(bert: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(bert, tmp_path / "bert")
    model = tiny(copy).train()
    model.loss(batch_of(model, 8, seed=3))["loss"].backward()  # running statistics move off their init
    model.eval()
    export = save_export(model, tmp_path / "export")
    shutil.rmtree(copy)  # nothing may be read from the original folder again
    assert (export / "text_model" / "config.json").is_file()
    loaded = load_export(export)
    assert isinstance(loaded, ComposeAE) and loaded.cfg.text_model is None
    batch = batch_of(model, 3, seed=1)
    assert torch.equal(loaded.processor().text(TEXTS[:3])["input_ids"], batch["input_ids"])
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_query(batch), model.encode_query(batch))
        torch.testing.assert_close(
            loaded.encode_target(batch["query_image"]), model.encode_target(batch["query_image"])
        )
    for name, value in model.text_encoder.state_dict().items():  # BERT's weights came from the export
        torch.testing.assert_close(loaded.text_encoder.state_dict()[name], value)


# ---- bad inputs ------------------------------------------------------------------------------------
def test_missing_or_bad_bert_folder_names_the_key(bert: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model.text_model"):
        build_model({"family": "composeae"})
    with pytest.raises(MissingInputError, match="model.text_model"):
        build_model({"family": "composeae", "text_model": str(tmp_path / "nowhere")})
    weightless = tmp_path / "weightless"
    weightless.mkdir()
    shutil.copy(bert / "config.json", weightless / "config.json")
    with pytest.raises(CoirError, match="model.text_model"):
        build_model({"family": "composeae", "text_model": str(weightless)})


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"loss": "hinge"}, "model.loss"),
        ({"text_layer": 5}, "model.text_layer"),
        ({"max_length": 1}, "model.max_length"),
    ],
)
def test_bad_options_name_the_key(bert: Path, options: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        tiny(bert, **options)


def test_bf16_weights_train_as_under_deepspeed(bert: Path) -> None:
    model = tiny(bert).to(torch.bfloat16).train()
    batch = batch_of(model, 8)
    batch = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in batch.items()}
    out = model.loss(batch)
    assert out["loss"].isfinite()
    out["loss"].backward()
    assert model.composer.a.grad is not None


def test_init_from_an_export_takes_its_weights_and_bert(bert: Path, tmp_path: Path) -> None:
    model = tiny(bert).eval()
    with torch.no_grad():
        model.composer.a.copy_(torch.tensor([7.0, 2.0]))
    export = save_export(model, tmp_path / "export")
    shape = {"embed_dim": 16, "conv_channels": 6, "conv_pool": 4, "image_size": 32, "resize": 32}
    started = build_model({"family": "composeae", "init_from": str(export), **shape}).eval()
    assert started.composer.a.tolist() == [7.0, 2.0]
    batch = batch_of(model, 2)
    with torch.no_grad():
        torch.testing.assert_close(started.encode_query(batch), model.encode_query(batch))
    with pytest.raises(ConfigError, match="model.embed_dim"):
        build_model({"family": "composeae", "init_from": str(export), "embed_dim": 8})
