"""CRN (pipeline/models/crn/): timm's Swin used unchanged with every stage read, the cross relations'
γ / β, gradients, each loss weight, the detached mutual KL, the aggregation switch, the concatenated
retrieval embedding, export and backbone weight loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
import torch.nn.functional as F
from timm.models.swin_transformer import SwinTransformer

from coir.common.errors import ConfigError
from coir.datasets.vocab import Vocabulary
from coir.pipeline.models.crn.model import Crn
from coir.pipeline.models.registry import build_model

CAPTIONS = ["is red and longer", "has stripes", "a blue dress with sleeves", "darker"]
SWIN = {"embed_dim": 8, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 2, 2], "window_size": 2}
SIZE = 64


def tiny_crn(tmp_path: Path, **options: object) -> Crn:
    vocab = tmp_path / "vocab.json"
    if not vocab.exists():
        Vocabulary.from_captions(CAPTIONS, tokenizer="tirg").save(vocab)
    base = {
        "family": "crn", "vocabulary": str(vocab), "image_size": SIZE, "resize": SIZE, "max_length": 10,
        "backbone": "swin_tiny_patch4_window7_224", "backbone_args": SWIN, "word_dim": 8, "lstm_hidden": 16,
        "embed_dim": 12, "map_dim": 24,
    }  # fmt: skip
    torch.manual_seed(0)
    model = build_model({**base, **options})
    assert isinstance(model, Crn)
    return model


def batch_of(model: Crn, texts: list[str] = CAPTIONS, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    batch = model.processor().text(texts)
    for role in ("query_image", "target_image"):
        batch[role] = torch.randn(len(texts), 3, SIZE, SIZE, generator=generator)
    return batch


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Crn:
    return tiny_crn(tmp_path_factory.mktemp("crn"))


def test_backbone_is_timms_swin_unchanged_and_every_stage_is_read(model: Crn) -> None:
    images = batch_of(model)["query_image"]
    reference = timm.create_model(
        "swin_tiny_patch4_window7_224", pretrained=False, num_classes=0, img_size=SIZE, **SWIN
    ).eval()
    for branch in model.branches.values():
        swin = branch.image.swin
        assert type(swin) is SwinTransformer and type(swin).__module__.startswith("timm.")
        assert not {"forward", "forward_features", "forward_intermediates"} & set(vars(swin))
        reference.load_state_dict(swin.state_dict())
        branch.eval()
        with torch.no_grad():
            stages = branch.image.stages(images)
            expected = reference.forward_intermediates(images, intermediates_only=True)
            final = reference.forward_features(images)  # NHWC, after the final norm
        channels, side = [8, 16, 32, 64], [16, 8, 4, 2]
        assert [tuple(s.shape) for s in stages] == [(4, c, h, h) for c, h in zip(channels, side, strict=True)]
        for ours, theirs in zip(stages[:-1], expected[:-1], strict=True):
            torch.testing.assert_close(ours, theirs)
        torch.testing.assert_close(stages[-1], final.permute(0, 3, 1, 2))


def test_cross_relations_give_gamma_and_beta_of_the_modulated_shapes(model: Crn) -> None:
    batch = batch_of(model)
    ids, lengths = batch["input_ids"], batch["lengths"]
    model.eval()
    with torch.no_grad():
        out, gamma, beta = model.branches["local"].relate(batch["query_image"], ids, lengths)
        assert gamma.shape == beta.shape == out.shape == (4, 24, 2, 2)  # map_dim x the last stage's cells
        regions, _ = model.branches["local"].image(batch["query_image"])
        torch.testing.assert_close(out, gamma * regions + beta)
        out, gamma, beta = model.branches["global"].relate(batch["query_image"], ids, lengths)
        longest = int(lengths.max())
        assert gamma.shape == beta.shape == out.shape == (4, 16, longest)  # LSTM size x the longest's words
        padding = torch.arange(longest)[None] >= lengths[:, None]
        assert padding.any() and out.permute(0, 2, 1)[padding].abs().max() == 0


def test_query_does_not_depend_on_padding_or_the_other_sentences(model: Crn) -> None:
    model.eval()
    batch = batch_of(model)
    alone = {k: v[1:2] for k, v in batch.items()}  # "has stripes": shorter than the batch's longest
    assert batch["lengths"][1] < batch["lengths"].max()
    with torch.no_grad():
        together = model.encode_query(batch)[1:2]
        torch.testing.assert_close(model.encode_query(alone), together)
        padded = {**alone, "input_ids": F.pad(alone["input_ids"], (0, 6))}
        torch.testing.assert_close(model.encode_query(padded), together)


def test_regions_pooled_is_one_cell(tmp_path: Path) -> None:
    model = tiny_crn(tmp_path, regions="pooled").eval()
    with torch.no_grad():
        regions, _ = model.branches["local"].image(batch_of(model)["query_image"])
    assert regions.shape == (4, 24, 1, 1)


def test_gradient_reaches_every_trainable_part(tmp_path: Path) -> None:
    model = tiny_crn(tmp_path).train()
    model.loss(batch_of(model))["loss"].backward()
    dead = [
        n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())
    ]
    assert dead == []
    assert any(n.endswith("image.aggregate.weight") for n, _ in model.named_parameters())


def test_each_loss_weight_scales_exactly_its_terms(model: Crn) -> None:
    model.train()
    batch = batch_of(model)

    def seeded(run, *args):  # the Swin's stochastic depth draws anew on each training-mode pass
        torch.manual_seed(1)
        return run(*args)

    with torch.no_grad():
        terms = seeded(model.terms, batch)
        full = seeded(model.loss, batch)["loss"]
        for weight, names in (
            ("class_weight", ["class_local", "class_global"]),
            ("perceptual_weight", ["perceptual"]),
            ("image_weight", ["image_local", "image_global"]),
            ("mutual_weight", ["mutual_local", "mutual_global"]),
        ):
            original = getattr(model.cfg, weight)
            try:
                setattr(model.cfg, weight, 0.0)
                without = seeded(model.loss, batch)["loss"]
                setattr(model.cfg, weight, 3.0)
                tripled = seeded(model.loss, batch)["loss"]
            finally:
                setattr(model.cfg, weight, original)
            removed = sum(terms[n] for n in names)
            assert removed > 0
            torch.testing.assert_close(full - without, removed)
            torch.testing.assert_close(tripled - without, 3 * removed)
    assert full > 0 and set(terms) == {
        "class_local", "class_global", "perceptual", "image_local", "image_global", "mutual_local",
        "mutual_global",
    }  # fmt: skip


def test_mutual_kl_and_image_consistency_see_the_other_branch_detached(model: Crn) -> None:
    model.train()
    batch = batch_of(model)
    for kind, other in (("local", "global"), ("global", "local")):
        for term in (f"mutual_{kind}", f"image_{kind}"):
            model.zero_grad()
            model.terms(batch)[term].backward()
            own = [p.grad for p in model.branches[kind].parameters() if p.grad is not None and p.grad.any()]
            leaked = [
                n for n, p in model.branches[other].named_parameters() if p.grad is not None and p.grad.any()
            ]
            assert own and leaked == [], (term, leaked)
    # the value: KL(p_other || p_own) of 10 x cosines, batch mean (eval: no stochastic depth)
    model.eval()
    with torch.no_grad():
        terms = model.terms(batch)
        q = {k: F.normalize(b.compose(batch["query_image"], batch["input_ids"], batch["lengths"])[0], dim=-1)
             for k, b in model.branches.items()}  # fmt: skip
        t = {k: F.normalize(b.image(batch["target_image"])[1], dim=-1) for k, b in model.branches.items()}
        own, teacher = (10 * q[k] @ t[k].T for k in ("local", "global"))
        p = teacher.softmax(dim=1)
        expected = (p * (p.log() - own.log_softmax(dim=1))).sum() / len(p)
    torch.testing.assert_close(terms["mutual_local"], expected)
    model.zero_grad()


def test_aggregation_paper_changes_the_output_released_ignores_its_parameters(tmp_path: Path) -> None:
    paper = tiny_crn(tmp_path, aggregation="paper").eval()
    released = tiny_crn(tmp_path, aggregation="released").eval()
    released.load_state_dict(paper.state_dict())
    images = batch_of(paper)["target_image"]
    with torch.no_grad():
        before_paper, before_released = paper.encode_target(images), released.encode_target(images)
        assert not torch.allclose(before_paper, before_released, atol=1e-4)
        for model in (paper, released):
            for branch in model.branches.values():
                branch.image.aggregate.weight.add_(torch.randn_like(branch.image.aggregate.weight))
        torch.testing.assert_close(released.encode_target(images), before_released)
        assert not torch.allclose(paper.encode_target(images), before_paper, atol=1e-4)
    assert not any(
        p.requires_grad for b in released.branches.values() for p in b.image.aggregate.parameters()
    )


def test_retrieval_embedding_is_both_normalised_branches_concatenated(model: Crn) -> None:
    model.eval()
    batch = batch_of(model)
    with torch.no_grad():
        query, target = model.encode_query(batch), model.encode_target(batch["target_image"])
        q = [F.normalize(b.compose(batch["query_image"], batch["input_ids"], batch["lengths"])[0], dim=-1)
             for b in model.branches.values()]  # fmt: skip
        t = [F.normalize(b.image(batch["target_image"])[1], dim=-1) for b in model.branches.values()]
    torch.testing.assert_close(query, F.normalize(torch.cat(q, dim=-1), dim=-1))
    torch.testing.assert_close(target, F.normalize(torch.cat(t, dim=-1), dim=-1))
    torch.testing.assert_close(model.score(query, target), (q[0] @ t[0].T + q[1] @ t[1].T) / 2)


def test_export_round_trip_gives_equal_embeddings(model: Crn, tmp_path: Path) -> None:
    from coir.pipeline.models.export import load_export, save_export

    model.eval()
    loaded = load_export(save_export(model, tmp_path / "export")).eval()
    assert isinstance(loaded, Crn) and loaded.cfg.aggregation == model.cfg.aggregation
    batch = batch_of(model)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_query(batch), model.encode_query(batch))
        torch.testing.assert_close(
            loaded.encode_target(batch["target_image"]), model.encode_target(batch["target_image"])
        )


def test_backbone_weights_load_into_both_branches_and_a_wrong_key_is_named(
    model: Crn, tmp_path: Path
) -> None:
    state = {f"{k}": v.clone() + 1 for k, v in model.branches["local"].image.swin.state_dict().items()}
    good = tmp_path / "swin.pth"
    torch.save(state, good)
    loaded = tiny_crn(tmp_path, backbone_weights=str(good))
    for branch in loaded.branches.values():
        torch.testing.assert_close(
            branch.image.swin.patch_embed.proj.weight, state["patch_embed.proj.weight"]
        )
    bad = dict(state)
    bad["layers.0.blocks.0.mlp.fc9.weight"] = bad.pop("layers.0.blocks.0.mlp.fc1.weight")
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(
        ConfigError, match=r"missing keys \(1\): layers\.0\.blocks\.0\.mlp\.fc1\.weight"
    ) as error:
        tiny_crn(tmp_path, backbone_weights=str(tmp_path / "bad.pth"))
    assert "unexpected keys (1): layers.0.blocks.0.mlp.fc9.weight" in str(error.value)


def test_bad_options_are_config_errors_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model.aggregation"):
        tiny_crn(tmp_path, aggregation="both")
    with pytest.raises(ConfigError, match="model.aggregation_stages"):
        tiny_crn(tmp_path, aggregation_stages=[3])
    artemis_vocab = Vocabulary.from_captions(CAPTIONS).save(tmp_path / "artemis.json")
    with pytest.raises(ConfigError, match="model.vocabulary"):
        tiny_crn(tmp_path, vocabulary=str(artemis_vocab))


def test_init_from_an_export_takes_its_weights_and_refuses_another_architecture(
    model: Crn, tmp_path: Path
) -> None:
    from coir.pipeline.models.export import save_export

    export = save_export(model, tmp_path / "export")
    started = tiny_crn(tmp_path, init_from=str(export), vocabulary=None, aggregation="released")
    assert started.cfg.aggregation == "released"
    for name, value in model.state_dict().items():
        torch.testing.assert_close(started.state_dict()[name], value)
    with pytest.raises(ConfigError, match="model.map_dim 24 there, 32 here"):
        tiny_crn(tmp_path, init_from=str(export), vocabulary=None, map_dim=32)
