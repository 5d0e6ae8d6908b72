"""ARTEMIS on the model interface: shapes, the joint score against the reference's broadcast form,
gradients and freezing, export round trip, config validation across families."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from coir.common.errors import ConfigError
from coir.datasets.vocab import Vocabulary
from coir.pipeline.models.artemis.config import ArtemisModelConfig
from coir.pipeline.models.export import load_export, save_export
from coir.pipeline.models.registry import build_model, model_config

TEXTS = ["is red and has long sleeves", "is shorter <and> more blue", "has a logo", "is darker"]
SIZE = 32  # ResNet-18 at 32 px: a 1 x 1 layer-4 map, fast


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory):
    return str(Vocabulary.from_captions(TEXTS).save(tmp_path_factory.mktemp("vocab") / "vocab.json"))


def config(vocab_file: str, **kw) -> ArtemisModelConfig:
    options = dict(vocabulary=vocab_file, backbone="resnet18", embed_dim=32, word_dim=16, image_size=SIZE)
    return ArtemisModelConfig(**{**options, "resize": SIZE, "max_length": 12, **kw})


def make(vocab_file: str, **kw):
    torch.manual_seed(0)
    return build_model(config(vocab_file, **kw))


def batch_of(model, n: int = 4, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "query_image": torch.randn(n, 3, SIZE, SIZE, generator=g),
        "target_image": torch.randn(n, 3, SIZE, SIZE, generator=g),
        **model.processor().text(TEXTS[:n]),
    }


def test_states_are_unit_norm_embeddings_and_attention_trees(vocab_file):
    model = make(vocab_file).eval()
    b = batch_of(model)
    with torch.no_grad():
        target, query = model.encode_target(b["target_image"]), model.encode_query(b)
    assert target.shape == (4, 32)
    torch.testing.assert_close(target.norm(dim=-1), torch.ones(4))
    assert set(query) == {"em_weight", "em_attention_sq", "is_weight", "is_attention_sq"}
    assert all(v.shape == (4, 32) for v in query.values())
    # an attention is a softmax over the features: its square root sums to one
    torch.testing.assert_close(query["em_attention_sq"].sqrt().sum(-1), torch.ones(4))


def test_score_equals_the_reference_broadcast_and_the_pairwise_equations(vocab_file):
    model = make(vocab_file).eval()
    b = batch_of(model)
    with torch.no_grad():
        reference, text = model.encode_target(b["query_image"]), model.encode_text(b)
        targets = model.encode_target(
            torch.randn(7, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(5))
        )
        fast = model.score(model.query_state(reference, text), targets)
        broadcast = model.score_broadcast(reference, text, targets)
        i, j = 2, 5  # one pair, written out as the paper's equations
        a_em, a_is = model.attention_em(text[i]), model.attention_is(text[i])
        em = F.normalize(model.transform_text(text[i]), dim=0) @ F.normalize(a_em * targets[j], dim=0)
        is_ = F.normalize(a_is * reference[i], dim=0) @ F.normalize(a_is * targets[j], dim=0)
    assert fast.shape == (4, 7)
    torch.testing.assert_close(fast, broadcast, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast[i, j], em + is_, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(fast, reference @ targets.T)  # joint: not the reference's dot product


def test_loss_is_cross_entropy_over_the_scaled_batch_scores_and_trains_every_part(vocab_file):
    model = make(vocab_file, temperature=1.5).train()
    b = batch_of(model)
    out = model.loss(b)
    with torch.no_grad():
        images = model.encode_target(torch.cat([b["query_image"], b["target_image"]]))
        scores = model.score(model.query_state(images[:4], model.encode_text(b)), images[4:])
    # BatchNorm in train mode: the recomputation above sees the same batch, so the same statistics
    torch.testing.assert_close(
        out["loss"], F.cross_entropy(scores * torch.exp(torch.tensor(1.5)), torch.arange(4))
    )
    out["loss"].backward()
    missing = [
        n
        for n, p in model.named_parameters()
        if p.requires_grad and (p.grad is None or not p.grad.abs().sum())
    ]
    assert not missing
    assert model.temp.grad is not None


def test_stage_one_freezes_the_cnn_and_word_embeddings_only(vocab_file):
    model = make(vocab_file, freeze_backbone=True, freeze_word_embeddings=True).train()
    model.loss(batch_of(model))["loss"].backward()
    for name, p in model.named_parameters():
        frozen = name.startswith("image_encoder.cnn.") or name == "text_encoder.embedding.weight"
        assert p.requires_grad is not frozen, name
        assert (p.grad is None) is frozen, name


def test_export_round_trip(vocab_file, tmp_path):
    model = make(vocab_file, text_encoder="lstm", lstm_hidden=24).eval()
    with torch.no_grad():
        model.temp.fill_(2.0)
    save_export(model, tmp_path / "exp")
    assert {p.name for p in (tmp_path / "exp").iterdir()} == {
        "model.safetensors",
        "coir_model.json",
        "coir_card.json",
        "vocabulary.json",
    }
    meta = json.loads((tmp_path / "exp" / "coir_model.json").read_text())
    assert (meta["family"], meta["name"]) == ("artemis", "artemis")
    assert meta["config"]["model"]["vocabulary"] is None  # nothing is read from the old path again
    loaded = load_export(tmp_path / "exp")
    b = batch_of(model)
    with torch.no_grad():
        q1, q2 = model.encode_query(b), loaded.encode_query(b)
        t1, t2 = model.encode_target(b["target_image"]), loaded.encode_target(b["target_image"])
        assert torch.equal(model.score(q1, t1), loaded.score(q2, t2))
    assert loaded.temp.item() == 2.0 and loaded.vocab == model.vocab


def test_init_from_keeps_the_weights_and_refuses_another_architecture(vocab_file, tmp_path):
    model = make(vocab_file).eval()
    export = save_export(model, tmp_path / "stage1")
    stage2 = build_model(config(None, init_from=str(export))).eval()
    b = batch_of(model)
    with torch.no_grad():
        assert torch.equal(stage2.encode_target(b["target_image"]), model.encode_target(b["target_image"]))
    with pytest.raises(ConfigError, match="model.embed_dim 32 there, 64 here"):
        build_model(config(None, init_from=str(export), embed_dim=64))


def test_each_family_validates_its_own_options(vocab_file):
    with pytest.raises(ConfigError, match="model.preset"):  # a BLIP option given to ARTEMIS
        model_config({"family": "artemis", "vocabulary": vocab_file, "preset": "tiny"})
    with pytest.raises(ConfigError, match="model.vocabulary"):  # an ARTEMIS option given to BLIP
        model_config({"family": "blip", "vocabulary": vocab_file})
    with pytest.raises(ConfigError, match="model.text_encoder"):
        build_model(config(vocab_file, text_encoder="transformer"))
    with pytest.raises(ConfigError, match="model.vocabulary"):
        build_model({"family": "artemis"})
    assert isinstance(model_config({"family": "artemis", "embed_dim": 64}), ArtemisModelConfig)
