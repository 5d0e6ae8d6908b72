"""The multi-level families (CMAP, MANME) on the model interface: level shapes, the summed joint score
against the pairwise equations, the loss as its terms, gradients and freezing, export round trip; the
cross-level interaction and each auxiliary loss against small cases worked out by hand."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from coir.common.errors import ConfigError
from coir.datasets.vocab import Vocabulary
from coir.pipeline.models.cmap.model import CrossLevelInteraction, preservation_cost, reversed_attention
from coir.pipeline.models.components.levels import LEVELS
from coir.pipeline.models.components.multilevel import LevelPairs
from coir.pipeline.models.export import load_export, save_export
from coir.pipeline.models.manme.model import exclusion_cost
from coir.pipeline.models.registry import build_model

TEXTS = ["is red and has long sleeves", "is shorter <and> more blue", "has a logo", "is darker"]
SIZE = 64  # ResNet-18 at 64 px: layer4 2 x 2 (more than one region to attend over), 4 x 4, 8 x 8
# each family in its released setting and in the paper's (as read here), the text encoder its default
VARIANTS = [
    ("cmap", {}),
    ("cmap", {"cross_level": "top_down", "fusion_gate": True}),
    ("manme", {}),
    ("manme", {"attention": "multi_grained"}),
]


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory):
    return str(Vocabulary.from_captions(TEXTS).save(tmp_path_factory.mktemp("vocab") / "vocab.json"))


def config(family: str, vocab_file: str | None, **kw) -> dict:
    options = dict(family=family, vocabulary=vocab_file, backbone="resnet18", embed_dim=32, word_dim=16)
    return {**options, "image_size": SIZE, "resize": SIZE, "max_length": 12, **kw}


def make(family: str, vocab_file: str, **kw):
    torch.manual_seed(0)
    return build_model(config(family, vocab_file, **kw))


def batch_of(model, n: int = 4, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "query_image": torch.randn(n, 3, SIZE, SIZE, generator=g),
        "target_image": torch.randn(n, 3, SIZE, SIZE, generator=g),
        **model.processor().text(TEXTS[:n]),
    }


# ---- model interface -------------------------------------------------------------------------------
@pytest.mark.parametrize(("family", "variant"), VARIANTS)
def test_states_hold_one_unit_embedding_and_one_em_is_state_per_level(family, variant, vocab_file):
    model = make(family, vocab_file, **variant).eval()
    b = batch_of(model)
    with torch.no_grad():
        target, query = model.encode_target(b["target_image"]), model.encode_query(b)
    assert set(target) == set(query) == set(LEVELS)
    for level in LEVELS:
        assert target[level].shape == (4, 32)
        torch.testing.assert_close(target[level].norm(dim=-1), torch.ones(4))
        assert set(query[level]) == {"em_weight", "em_attention_sq", "is_weight", "is_attention_sq"}
        assert all(v.shape == (4, 32) for v in query[level].values())


def level_scores(model, text: torch.Tensor, reference: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[q, g] EM + IS at one level, broadcast as the references compute it (l2n of every A * t)."""
    a_em, a_is = model.attention_em(text)[:, None], model.attention_is(text)[:, None]
    em_text = F.normalize(model.transform_text(text), dim=-1)[:, None]
    em = (em_text * F.normalize(a_em * targets[None], dim=-1)).sum(-1)
    is_reference = F.normalize(a_is * reference[:, None], dim=-1)
    return em + (is_reference * F.normalize(a_is * targets[None], dim=-1)).sum(-1)


@pytest.mark.parametrize(("family", "variant"), VARIANTS)
def test_score_is_the_sum_over_levels_of_the_pairwise_em_plus_is(family, variant, vocab_file):
    model = make(family, vocab_file, **variant).eval()
    b = batch_of(model)
    gallery = torch.randn(5, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        scores = model.score(model.encode_query(b), model.encode_target(gallery))
        reference, targets = model.encode_target(b["query_image"]), model.encode_target(gallery)
        texts = model.level_texts(model.encode_text(b), model.image_encoder.maps(b["query_image"]))
        expected = sum(level_scores(model, texts[lv], reference[lv], targets[lv]) for lv in LEVELS)
        i, j = 2, 3  # one pair, written out as the paper's equations at one level
        m, t = texts["layer3"][i], targets["layer3"][j]
        a_em, a_is = model.attention_em(m), model.attention_is(m)
        em = F.normalize(model.transform_text(m), dim=0) @ F.normalize(a_em * t, dim=0)
        is_ = F.normalize(a_is * reference["layer3"][i], dim=0) @ F.normalize(a_is * t, dim=0)
        pair = level_scores(model, texts["layer3"], reference["layer3"], targets["layer3"])[i, j]
    assert scores.shape == (4, 5)
    torch.testing.assert_close(scores, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pair, em + is_, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("family", "variant"), VARIANTS)
def test_loss_is_the_level_cross_entropies_plus_the_auxiliary_term_and_trains_all(
    family, variant, vocab_file
):
    model = make(family, vocab_file, temperature=1.5, **variant).train()
    b = batch_of(model)
    torch.manual_seed(3)  # the same dropout masks (MANME's LSTM) in the loss and in the recomputation
    out = model.loss(b)
    auxiliary = [k for k in out if k not in ("loss", "scale") and not k.startswith("ce_")]
    assert len(auxiliary) == 1 and out[auxiliary[0]] > 0
    torch.testing.assert_close(out["loss"], sum(out[f"ce_{level}"] for level in LEVELS) + out[auxiliary[0]])
    with torch.no_grad():  # BatchNorm in train mode: the same 8 images give the same statistics
        maps = model.image_encoder.maps(torch.cat([b["query_image"], b["target_image"]]))
        images = model.image_encoder.embed(maps)
        torch.manual_seed(3)
        texts = model.level_texts(model.encode_text(b), {lv: x[:4] for lv, x in maps.items()})
        for level in LEVELS:
            scores = level_scores(model, texts[level], images[level][:4], images[level][4:])
            ce = F.cross_entropy(scores * math.exp(1.5), torch.arange(4))
            torch.testing.assert_close(out[f"ce_{level}"], ce, atol=1e-5, rtol=1e-5)
    out["loss"].backward()
    missing = [
        n
        for n, p in model.named_parameters()
        if p.requires_grad and (p.grad is None or not p.grad.abs().sum())
    ]
    assert not missing


@pytest.mark.parametrize(("family", "variant"), VARIANTS[::2])
def test_stage_one_freezes_the_cnn_and_word_embeddings_only(family, variant, vocab_file):
    model = make(family, vocab_file, freeze_backbone=True, freeze_word_embeddings=True, **variant).train()
    model.loss(batch_of(model))["loss"].backward()
    assert not model.image_encoder.cnn.training  # BatchNorm keeps its running statistics
    for name, p in model.named_parameters():
        frozen = name.startswith("image_encoder.cnn.") or name == "text_encoder.embedding.weight"
        assert p.requires_grad is not frozen, name
        assert (p.grad is None) is frozen, name


@pytest.mark.parametrize(("family", "variant"), VARIANTS[1::2])
def test_export_round_trip_and_init_from(family, variant, vocab_file, tmp_path):
    model = make(family, vocab_file, text_encoder="bigru", **variant).eval()
    export = save_export(model, tmp_path / "exp")
    meta = json.loads((export / "coir_model.json").read_text())
    assert (meta["family"], meta["name"]) == (family, family)
    loaded = load_export(export)
    b = batch_of(model)
    with torch.no_grad():
        q1, q2 = model.encode_query(b), loaded.encode_query(b)
        t1, t2 = model.encode_target(b["target_image"]), loaded.encode_target(b["target_image"])
        assert torch.equal(model.score(q1, t1), loaded.score(q2, t2))
    stage2 = build_model(config(family, None, init_from=str(export), text_encoder="bigru", **variant))
    assert torch.equal(stage2.eval().encode_target(b["target_image"])["layer2"], t1["layer2"])
    with pytest.raises(ConfigError, match="model.embed_dim 32 there, 64 here"):
        build_model(
            config(family, None, init_from=str(export), text_encoder="bigru", embed_dim=64, **variant)
        )


# ---- CMAP ------------------------------------------------------------------------------------------
def test_cmap_options_are_checked(vocab_file):
    with pytest.raises(ConfigError, match="model.cross_level"):
        make("cmap", vocab_file, cross_level="bottom_up")
    with pytest.raises(ConfigError, match="model.preservation_margins"):
        make("cmap", vocab_file, preservation_margins=[0.6, 0.4])
    with pytest.raises(ConfigError, match="model.pooling"):  # an ARTEMIS option
        make("cmap", vocab_file, pooling="avg")


def _one_channel_interaction(path: str, gate: bool = False) -> CrossLevelInteraction:
    """1 channel per level; lateral = x 2, smooth = identity (3x3 with only the centre tap), gate
    weights 0 so that g = sigmoid(0) = 1/2."""
    interaction = CrossLevelInteraction(dict.fromkeys(LEVELS, 1), path, gate)
    with torch.no_grad():
        for conv in interaction.lateral.values():
            conv.weight.fill_(2.0), conv.bias.zero_()
        for conv in interaction.smooth.values():
            conv.weight.zero_(), conv.bias.zero_()
            conv.weight[0, 0, 1, 1] = 1.0
        for conv in (interaction.gate or {}).values():
            conv.weight.zero_(), conv.bias.zero_()
    return interaction


def _maps() -> dict[str, torch.Tensor]:
    return {
        "layer4": torch.full((1, 1, 1, 1), 3.0),
        "layer3": torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2),
        "layer2": torch.arange(16.0).view(1, 1, 4, 4),
    }


def test_cross_level_released_path_brings_the_finer_map_to_the_coarser_grid():
    out = _one_channel_interaction("released")(_maps())
    assert torch.equal(out["layer4"], _maps()["layer4"])
    # layer3 (2 x 2) halved by bilinear resizing = the mean of its 4 values, plus 2 x layer4
    torch.testing.assert_close(out["layer3"], torch.full((1, 1, 1, 1), 2.5 + 6.0))
    # layer2 (4 x 4: 0..15) onto layer3's 2 x 2 grid = the means of its 2 x 2 blocks, plus 2 x layer3
    blocks = torch.tensor([[2.5, 4.5], [10.5, 12.5]])
    torch.testing.assert_close(out["layer2"], (blocks + 2 * _maps()["layer3"][0, 0]).view(1, 1, 2, 2))


def test_cross_level_top_down_path_keeps_each_grid_and_the_gate_halves_the_higher_level():
    plain = _one_channel_interaction("top_down")(_maps())
    assert plain["layer3"].shape == (1, 1, 2, 2) and plain["layer2"].shape == (1, 1, 4, 4)
    torch.testing.assert_close(plain["layer3"][0, 0], torch.tensor([[7.0, 8.0], [9.0, 10.0]]))
    # layer2 + upsampled 2 x P3, P3 = [[7, 8], [9, 10]]: the top-left corner takes P3's corner as it is
    assert plain["layer2"][0, 0, 0, 0].item() == pytest.approx(0.0 + 2 * 7.0)
    gated = _one_channel_interaction("top_down", gate=True)(_maps())
    torch.testing.assert_close(gated["layer3"][0, 0], torch.tensor([[4.0, 5.0], [6.0, 7.0]]))


# hand-worked preservation case: a_is = [0.75, 0.25] (mean 0.5, so Rev = [0.25, 0.75]), t = [0.6, 0.8]
#   l2n(A * t)   = [0.45, 0.20] / sqrt(0.2425)    l2n(Rev * t) = [0.15, 0.60] / sqrt(0.3825)
# row 0: m = [1, 0]: kept 0.45 / sqrt(0.2425) = 0.913812, mirrored 0.15 / sqrt(0.3825) = 0.242536
# row 1: m = [0, 1]: kept 0.20 / sqrt(0.2425) = 0.406138, mirrored 0.60 / sqrt(0.3825) = 0.970143
KEPT_MINUS_MIRRORED = (
    0.45 / math.sqrt(0.2425) - 0.15 / math.sqrt(0.3825),
    0.20 / math.sqrt(0.2425) - 0.60 / math.sqrt(0.3825),
)
A_IS, TARGET, TEXT = torch.tensor([[0.75, 0.25]] * 2), torch.tensor([[0.6, 0.8]] * 2), torch.eye(2)


def test_reversed_attention_mirrors_about_the_mean():
    mirrored = reversed_attention(torch.tensor([[0.7, 0.2, 0.1]]))  # mean 1/3
    torch.testing.assert_close(mirrored, torch.tensor([[2 / 3 - 0.7, 2 / 3 - 0.2, 2 / 3 - 0.1]]))


def test_preservation_cost_margin_active_and_inactive():
    cost = preservation_cost(TEXT, A_IS, TARGET, margin=0.6)  # both rows active
    d0, d1 = KEPT_MINUS_MIRRORED
    torch.testing.assert_close(cost, torch.tensor([0.6 + d0, 0.6 + d1]))
    assert cost[1].item() == pytest.approx(0.035995, abs=1e-5)
    cost = preservation_cost(TEXT, A_IS, TARGET, margin=0.3)  # row 1: 0.3 - 0.564005 < 0, inactive
    torch.testing.assert_close(cost, torch.tensor([0.3 + d0, 0.0]))


def test_cmap_preservation_term_weights_the_levels_and_sums_the_batch(vocab_file):
    model = make("cmap", vocab_file, preservation_weight=2.0)
    pair = LevelPairs(TEXT, torch.zeros(2, 2), torch.zeros(2, 2), A_IS, TARGET)
    term = model.auxiliary_losses(dict.fromkeys(LEVELS, pair))["preservation"]
    d0, d1 = KEPT_MINUS_MIRRORED
    layer4 = (0.6 + d0) + (0.6 + d1)  # margins 0.6 / 0.4 / 0.3, level weights 1 / 1 / 0.5
    layer3 = (0.4 + d0) + max(0.0, 0.4 + d1)
    layer2 = (0.3 + d0) + max(0.0, 0.3 + d1)
    assert term.item() == pytest.approx(2.0 * (layer4 + layer3 + 0.5 * layer2), abs=1e-5)
    assert make("cmap", vocab_file, preservation=False).auxiliary_losses(dict.fromkeys(LEVELS, pair)) == {}


# ---- MANME -----------------------------------------------------------------------------------------
def test_manme_options_are_checked(vocab_file):
    with pytest.raises(ConfigError, match="model.attention"):
        make("manme", vocab_file, attention="self")
    with pytest.raises(ConfigError, match="model.mutual_exclusion_margins"):
        make("manme", vocab_file, mutual_exclusion_margins=[0.6])
    with pytest.raises(ConfigError, match="model.fusion_gate"):  # a CMAP option
        make("manme", vocab_file, fusion_gate=True)


# hand-worked mutual-exclusion case: m = [1, 0], Tr(m) = [0, 1], t = [0.6, 0.8],
# A_IS = [0.75, 0.25]: l2n(A_IS * t) = [0.45, 0.20] / sqrt(0.2425) = [0.913812, 0.406138]
# A_EM = [0.25, 0.75]: l2n(A_EM * t) = [0.15, 0.60] / sqrt(0.3825) = [0.242536, 0.970143]
#   preserved: 0.4 * 0.913812 + 0.6 * 0.406138 = 0.609208
#   modified:  0.6 * 0.970143 + 0.4 * 0.242536 = 0.679100    -> preserved - modified = -0.069892
PRESERVED = (0.4 * 0.45 + 0.6 * 0.20) / math.sqrt(0.2425)
MODIFIED = (0.6 * 0.60 + 0.4 * 0.15) / math.sqrt(0.3825)
EXCLUSION_PAIRS = LevelPairs(
    text=torch.tensor([[1.0, 0.0]]),
    em_text=torch.tensor([[0.0, 1.0]]),
    a_em=torch.tensor([[0.25, 0.75]]),
    a_is=torch.tensor([[0.75, 0.25]]),
    target=torch.tensor([[0.6, 0.8]]),
)


def test_exclusion_cost_margin_active_and_inactive():
    assert pytest.approx(-0.069892, abs=1e-6) == PRESERVED - MODIFIED
    active = exclusion_cost(EXCLUSION_PAIRS, margin=0.6)
    torch.testing.assert_close(active, torch.tensor([0.6 + PRESERVED - MODIFIED]))
    inactive = exclusion_cost(EXCLUSION_PAIRS, margin=0.05)  # 0.05 - 0.069892 < 0
    torch.testing.assert_close(inactive, torch.tensor([0.0]))


def test_exclusion_cost_as_written_without_normalisation():
    # A_IS * t = [0.45, 0.20], A_EM * t = [0.15, 0.60]: preserved 0.4 * 0.45 + 0.6 * 0.20 = 0.30,
    # modified 0.6 * 0.60 + 0.4 * 0.15 = 0.42
    active = exclusion_cost(EXCLUSION_PAIRS, margin=0.6, normalized=False)
    torch.testing.assert_close(active, torch.tensor([0.6 + 0.30 - 0.42]))
    inactive = exclusion_cost(EXCLUSION_PAIRS, margin=0.1, normalized=False)  # 0.1 - 0.12 < 0
    torch.testing.assert_close(inactive, torch.tensor([0.0]))


def test_manme_exclusion_term_sums_levels_and_batch_with_its_weight(vocab_file):
    model = make("manme", vocab_file, mutual_exclusion_weight=0.5, mutual_exclusion_margins=[0.6, 0.3, 0.05])
    two_rows = LevelPairs(*(torch.cat([x, x]) for x in vars(EXCLUSION_PAIRS).values()))
    term = model.auxiliary_losses(dict.fromkeys(LEVELS, two_rows))["mutual_exclusion"]
    per_row = (0.6 + PRESERVED - MODIFIED) + (0.3 + PRESERVED - MODIFIED) + 0.0  # layer2's margin inactive
    assert term.item() == pytest.approx(0.5 * 2 * per_row, abs=1e-5)
    raw = make(
        "manme", vocab_file, mutual_exclusion_margins=[0.6, 0.3, 0.05], mutual_exclusion_normalized=False
    )
    term = raw.auxiliary_losses(dict.fromkeys(LEVELS, two_rows))["mutual_exclusion"]
    assert term.item() == pytest.approx(2 * ((0.6 - 0.12) + (0.3 - 0.12)), abs=1e-5)
    released = make("manme", vocab_file, mutual_exclusion=False)  # the released training's loss
    assert released.auxiliary_losses(dict.fromkeys(LEVELS, two_rows)) == {}
