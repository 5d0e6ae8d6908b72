"""TIRG (pipeline/models/tirg/): its vocabulary tokenizer, the LSTM's last-real-token output, the
composition equation against a plain re-implementation, shapes, gradients, the learnable scale, and
each loss on a hand-worked case."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from coir.common.errors import ConfigError, DataFormatError
from coir.datasets.vocab import Vocabulary, tirg_tokens
from coir.pipeline.models.components.text import LSTMEncoder
from coir.pipeline.models.registry import build_model
from coir.pipeline.models.tirg.model import Composer, Tirg

CAPTIONS = ["Replace red with blue!", "a long-sleeve, Café dress.", "blue skirt", "red top"]


def tiny_tirg(tmp_path: Path, **options: object) -> Tirg:
    vocab = Vocabulary.from_captions(CAPTIONS, tokenizer="tirg").save(tmp_path / "vocab.json")
    base = {"family": "tirg", "vocabulary": str(vocab), "embed_dim": 16, "word_dim": 8, "lstm_hidden": 12}
    model = build_model({**base, "image_size": 32, "resize": 32, "max_length": 8, **options})
    assert isinstance(model, Tirg)
    return model


def batch_of(model: Tirg, texts: list[str], seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    batch = model.processor().text(texts)
    for role in ("query_image", "target_image"):
        batch[role] = torch.randn(len(texts), 3, 32, 32, generator=generator)
    return batch


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


# ---- vocabulary -------------------------------------------------------------------------------------
def test_tirg_tokens_are_ascii_lower_case_without_punctuation() -> None:
    assert tirg_tokens("A Long-Sleeve, Café dress.  <and> RED!") == [
        "a",
        "longsleeve",
        "caf",
        "dress",
        "and",
        "red",
    ]


def test_tirg_vocabulary_sorts_words_after_unk_zero(tmp_path: Path) -> None:
    vocab = Vocabulary.from_captions(CAPTIONS, tokenizer="tirg")
    words = ["a", "blue", "caf", "dress", "longsleeve", "red", "replace", "skirt", "top", "with"]
    assert vocab.words == ["<UNK>", *words]
    assert vocab.encode_query("replace RED with green") == [7, 6, 10, 0]  # green is unknown: 0
    assert vocab.encode_query(["blue skirt", "top"]) == [2, 8, 0, 9]  # joined with <and> -> "and" (unknown)
    assert vocab.encode_query("?!") == [0]  # one step for the LSTM
    assert vocab.truncate([1, 2, 3, 4], 3) == [1, 2, 3]
    assert Vocabulary.load(vocab.save(tmp_path / "v.json")) == vocab
    assert Vocabulary.load(tmp_path / "v.json").tokenizer == "tirg"
    assert vocab != Vocabulary(words)  # same words, the artemis tokenizer


def test_vocabulary_file_with_an_unknown_tokenizer_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "v.json"
    path.write_text(
        '{"format": "coir.word_vocabulary", "version": 1, "tokenizer": "bpe", "words": ["<UNK>"]}'
    )
    with pytest.raises(DataFormatError, match="tokenizer"):
        Vocabulary.load(path)


def test_tirg_processor_pads_words_without_start_or_end(tmp_path: Path) -> None:
    model = tiny_tirg(tmp_path)
    text = model.processor().text(["replace red with blue", "red"])
    assert text["input_ids"].tolist() == [[7, 6, 10, 2, 0, 0, 0, 0], [6, 0, 0, 0, 0, 0, 0, 0]]
    assert text["lengths"].tolist() == [4, 1]


# ---- text encoder -------------------------------------------------------------------------------------
def test_lstm_last_output_is_the_output_at_the_last_real_token() -> None:
    torch.manual_seed(0)
    embedding = nn.Embedding(10, 6)
    encoder = LSTMEncoder(embedding, embed_dim=5, hidden_dim=7, normalize=False, output="last").eval()
    ids = torch.tensor([[3, 4, 5, 0, 0], [6, 7, 8, 9, 2]])
    out = encoder(ids, torch.tensor([3, 5]))
    for row, length in ((0, 3), (1, 5)):  # the LSTM run over the real tokens alone, its last step
        steps, _ = encoder.lstm(embedding(ids[row : row + 1, :length]))
        torch.testing.assert_close(out[row], encoder.fc(steps[0, -1]))
    shorter_padding = encoder(ids[:1, :4], torch.tensor([3]))
    torch.testing.assert_close(shorter_padding[0], out[0])


# ---- composition ------------------------------------------------------------------------------------
def test_composition_equation_against_a_plain_reimplementation() -> None:
    torch.manual_seed(0)
    composer = Composer(4).train()
    with torch.no_grad():  # non-trivial BatchNorm affine parameters and a
        for bn in (composer.gate[0], composer.residual[0]):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
        composer.a.copy_(torch.tensor([0.7, 3.0]))
    image, text = torch.randn(5, 4), torch.randn(5, 4)

    def bn(x: torch.Tensor, layer: nn.BatchNorm1d) -> torch.Tensor:  # batch statistics, biased variance
        mean, var = x.mean(0), x.var(0, unbiased=False)
        return (x - mean) / torch.sqrt(var + layer.eps) * layer.weight + layer.bias

    def linear(x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
        return x @ layer.weight.T + layer.bias

    both = torch.cat([image, text], dim=1)
    gate = linear(bn(both, composer.gate[0]).clamp(min=0), composer.gate[2])
    hidden = linear(bn(both, composer.residual[0]).clamp(min=0), composer.residual[2]).clamp(min=0)
    residual = linear(hidden, composer.residual[4])
    expected = 0.7 / (1 + torch.exp(-gate)) * image + 3.0 * residual
    torch.testing.assert_close(composer(image, text), expected)


def test_initial_composition_weights_and_scale(tmp_path: Path) -> None:
    model = tiny_tirg(tmp_path)
    assert model.composer.a.tolist() == [1.0, 10.0]
    assert model.scale().item() == 4.0
    names = dict(model.named_parameters())
    assert "norm_scale" in names and "composer.a" in names
    frozen = tiny_tirg(tmp_path, learnable_scale=False, normalize_scale=2.0)
    assert "norm_scale" not in dict(frozen.named_parameters()) and frozen.scale().item() == 2.0


def test_shapes_and_dot_product_scores(tmp_path: Path) -> None:
    model = tiny_tirg(tmp_path).eval()
    batch = batch_of(model, ["replace red with blue", "blue skirt", "red"])
    with torch.no_grad():
        query, target = model.encode_query(batch), model.encode_target(batch["target_image"])
    assert query.shape == target.shape == (3, 16)
    torch.testing.assert_close(query.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(model.score(query, target), query @ target.T)


@pytest.mark.parametrize(
    ("loss", "triplet"),
    [("batch_classification", "paper"), ("soft_triplet", "paper"), ("soft_triplet", "released")],
)
def test_every_part_gets_gradients(tmp_path: Path, loss: str, triplet: str) -> None:
    model = tiny_tirg(tmp_path, loss=loss, triplet=triplet).train()
    out = model.loss(batch_of(model, ["replace red with blue", "blue skirt", "red top", "a dress"]))
    out["loss"].backward()
    for name in (
        "image_encoder.cnn.conv1.weight", "image_encoder.fc.weight", "text_encoder.embedding.weight",
        "text_encoder.lstm.weight_ih_l0", "text_encoder.fc.weight", "composer.gate.2.weight",
        "composer.residual.4.weight", "composer.a", "norm_scale",
    ):  # fmt: skip
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


# ---- losses on a hand-worked case ---------------------------------------------------------------------
# queries q0 = (1, 0), q1 = (0, 1); targets t0 = (1, 0), t1 = (0.6, 0.8); scale s = 4 on both sides, so
# a dot product is 16 cos and a squared distance 16 (2 - 2 cos): q0.t0 = 1, q0.t1 = 0.6, q1.t0 = 0,
# q1.t1 = 0.8, q0.q1 = 0, t0.t1 = 0.6.
QUERIES = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
TARGETS = torch.tensor([[1.0, 0.0], [0.6, 0.8]])


def test_batch_classification_loss_by_hand(tmp_path: Path) -> None:
    model = tiny_tirg(tmp_path, loss="batch_classification")
    # rows of logits (16, 9.6) and (0, 12.8): -log softmax of the diagonal = softplus(other - own)
    expected = (softplus(9.6 - 16) + softplus(0 - 12.8)) / 2
    assert model.objective(QUERIES, TARGETS).item() == pytest.approx(expected, rel=1e-4)


def test_soft_triplet_paper_loss_by_hand(tmp_path: Path) -> None:
    model = tiny_tirg(tmp_path, loss="soft_triplet", triplet="paper")
    # q0: d(q0, t0) = 0, d(q0, t1) = 12.8; q1: d(q1, t1) = 6.4, d(q1, t0) = 32
    expected = (softplus(0 - 12.8) + softplus(6.4 - 32)) / 2
    assert model.objective(QUERIES, TARGETS).item() == pytest.approx(expected, rel=1e-4)


def test_soft_triplet_released_loss_by_hand(tmp_path: Path) -> None:
    model = tiny_tirg(tmp_path, loss="soft_triplet", triplet="released")
    # anchors q0, q1, t0, t1 (labels 0 1 0 1); positive the other half of the pair, negatives the
    # two entries of the other label
    terms = [
        softplus(0 - 32), softplus(0 - 12.8),  # q0: pos t0 (0); neg q1 (32), t1 (12.8)
        softplus(6.4 - 32), softplus(6.4 - 32),  # q1: pos t1 (6.4); neg q0 (32), t0 (32)
        softplus(0 - 32), softplus(0 - 12.8),  # t0: pos q0 (0); neg q1 (32), t1 (12.8)
        softplus(6.4 - 12.8), softplus(6.4 - 12.8),  # t1: pos q1 (6.4); neg q0 (12.8), t0 (12.8)
    ]  # fmt: skip
    assert model.objective(QUERIES, TARGETS).item() == pytest.approx(sum(terms) / 8, rel=1e-4)


def test_scale_is_learned_through_both_sides(tmp_path: Path) -> None:
    model = tiny_tirg(tmp_path, loss="batch_classification")
    model.objective(QUERIES, TARGETS).backward()
    # loss(s) = mean softplus(s^2 (cos_other - cos_own)); d/ds = mean sigmoid(.) * 2 s (cos_other - cos_own)
    s = 4.0
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected = (sig(16 * -0.4) * 2 * s * -0.4 + sig(16 * -0.8) * 2 * s * -0.8) / 2
    assert model.norm_scale.grad.item() == pytest.approx(expected, rel=1e-4)


# ---- configuration ----------------------------------------------------------------------------------
def test_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model.loss"):
        tiny_tirg(tmp_path, loss="hinge")
    with pytest.raises(ConfigError, match="model.triplet"):
        tiny_tirg(tmp_path, triplet="sampled")
    artemis_vocab = Vocabulary.from_captions(CAPTIONS).save(tmp_path / "artemis.json")
    with pytest.raises(ConfigError, match="--tokenizer tirg"):
        build_model({"family": "tirg", "vocabulary": str(artemis_vocab), "embed_dim": 16})


def test_export_round_trip(tmp_path: Path) -> None:
    from coir.pipeline.models.export import load_export, save_export

    model = tiny_tirg(tmp_path, loss="soft_triplet").eval()
    loaded = load_export(save_export(model, tmp_path / "export")).eval()
    assert isinstance(loaded, Tirg) and loaded.cfg.loss == "soft_triplet" and loaded.vocab == model.vocab
    batch = batch_of(model, ["replace red with blue", "blue skirt"])
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_query(batch), model.encode_query(batch))
    assert F.cosine_similarity(loaded.composer.a, model.composer.a, dim=0) > 0.999


def test_init_from_an_export_takes_its_weights_and_refuses_another_architecture(tmp_path: Path) -> None:
    from coir.pipeline.models.export import save_export

    source = tiny_tirg(tmp_path).eval()
    export = save_export(source, tmp_path / "export")
    base = {"family": "tirg", "init_from": str(export), "embed_dim": 16, "word_dim": 8, "lstm_hidden": 12}
    started = build_model({**base, "image_size": 32, "resize": 32, "loss": "soft_triplet"})
    assert isinstance(started, Tirg) and started.cfg.loss == "soft_triplet"
    torch.testing.assert_close(started.composer.a, source.composer.a)
    torch.testing.assert_close(
        started.state_dict()["image_encoder.fc.weight"], source.image_encoder.fc.weight
    )
    with pytest.raises(ConfigError, match="model.embed_dim"):
        build_model({**base, "embed_dim": 32})
