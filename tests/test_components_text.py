"""Word embeddings from a local GloVe file, the BiGRU / LSTM text encoders, the word processor."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from coir.common.errors import DataFormatError, MissingInputError
from coir.datasets.vocab import END, START, Vocabulary
from coir.pipeline.models.components.glove import load_glove_, read_glove, word_embedding
from coir.pipeline.models.components.processor import WordProcessor
from coir.pipeline.models.components.text import BiGRUEncoder, LSTMEncoder

DIM = 4


def glove_file(path: Path, rows: dict[str, list[float]], extra: str = "") -> Path:
    lines = [" ".join([word, *(f"{v:.4f}" for v in vector)]) for word, vector in rows.items()]
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def encoders(vocab_size: int = 20) -> list[nn.Module]:
    torch.manual_seed(0)
    gru = BiGRUEncoder(nn.Embedding(vocab_size, 6), embed_dim=8)
    lstm = LSTMEncoder(nn.Embedding(vocab_size, 6), embed_dim=8, hidden_dim=10)
    return [gru.eval(), lstm.eval()]


# ---------------------------------------------------------------- GloVe


def test_glove_rows_coverage_and_random_init_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    vocab = Vocabulary(["red", "dress", "zzqx"])
    path = glove_file(
        tmp_path / "glove.txt",
        {
            "the": [9, 9, 9, 9],
            "red": [1, 2, 3, 4],
            ". . .": [5, 5, 5, 5],
            "dress": [0.5, -1, 0, 2],
            "Red": [7] * 4,
        },
    )
    torch.manual_seed(0)
    before = nn.Embedding(len(vocab), DIM).weight.detach().clone()
    torch.manual_seed(0)
    with caplog.at_level(logging.INFO):
        embedding, coverage = word_embedding(vocab.words, DIM, path)
    w = embedding.weight.detach()
    assert torch.equal(w[vocab.id("red")], torch.tensor([1.0, 2, 3, 4]))  # case-sensitive, as torchtext
    assert torch.equal(w[vocab.id("dress")], torch.tensor([0.5, -1, 0, 2]))
    missing = [vocab.id(t) for t in ("<pad>", "<start>", "<and>", "<end>", "<unk>", "zzqx")]
    assert torch.equal(w[missing], before[missing])  # nn.Embedding's N(0, 1) init, untouched
    assert coverage is not None and (coverage.found, coverage.total) == (2, 8)
    assert coverage.missing[-1] == "zzqx" and coverage.share == 0.25
    assert "2/8 vocabulary entries found (25.0%)" in caplog.text
    # words with spaces are read whole
    assert read_glove(path, [". . ."], DIM)[". . ."].tolist() == [5.0] * 4


def test_no_glove_is_xavier(tmp_path: Path) -> None:
    embedding, coverage = word_embedding(["a"] * 1 + [f"w{i}" for i in range(99)], 300)
    bound = (6 / (100 + 300)) ** 0.5
    assert coverage is None and embedding.weight.abs().max() <= bound
    assert embedding.weight.std() > bound / 3  # not zeros


def test_glove_errors_name_file_and_line(tmp_path: Path) -> None:
    short = glove_file(tmp_path / "short.txt", {"a": [1, 2, 3, 4]}, extra="b 1 2 3\n")
    with pytest.raises(DataFormatError, match=r"short\.txt: line 2: expected a word and 4 values, found 3"):
        read_glove(short, ["zz"], DIM)
    longer = glove_file(tmp_path / "long.txt", {"a": [1, 2, 3, 4, 5]})
    with pytest.raises(DataFormatError, match=r"long\.txt: line 1: 5 values, expected 4"):
        read_glove(longer, ["a"], DIM)
    text = glove_file(tmp_path / "text.txt", {"a": [1, 2, 3, 4]}, extra="b 1 2 x 4\n")
    with pytest.raises(DataFormatError, match=r"text\.txt: line 2: value 'x' is not a number"):
        read_glove(text, ["b"], DIM)
    with pytest.raises(MissingInputError, match="nope.txt"):
        read_glove(tmp_path / "nope.txt", ["a"], DIM)
    with pytest.raises(ValueError, match="rows"):
        load_glove_(nn.Embedding(3, DIM), ["a"], text)


# ---------------------------------------------------------------- encoders


@pytest.mark.parametrize("index", [0, 1], ids=["bigru", "lstm"])
def test_encoder_shapes_norm_and_gradients(index: int) -> None:
    encoder = encoders()[index].train()
    ids = torch.tensor([[1, 5, 6, 7, 3], [1, 8, 3, 0, 0], [1, 3, 0, 0, 0]])
    out = encoder(ids, torch.tensor([5, 3, 2]))
    assert out.shape == (3, 8)
    assert torch.allclose(out.norm(dim=-1), torch.ones(3), atol=1e-5)
    out.sum().backward()
    for name, p in encoder.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    # the embedding rows of padding never get a gradient: padding is not read
    assert encoder.embedding.weight.grad[0].abs().sum() == 0


@pytest.mark.parametrize("index", [0, 1], ids=["bigru", "lstm"])
def test_padding_and_batch_do_not_change_the_output(index: int) -> None:
    encoder = encoders()[index]
    sentence = [1, 5, 9, 12, 3]
    with torch.no_grad():
        alone = encoder(torch.tensor([sentence]), torch.tensor([5]))
        padded = encoder(torch.tensor([sentence + [0] * 7]), torch.tensor([5]))
        garbage = encoder(torch.tensor([sentence + [17] * 3]), torch.tensor([5]))  # not read either
        # shortest first (unsorted), next to a longer sentence
        batch = encoder(torch.tensor([sentence + [0] * 5, [1, *range(4, 12), 3]]), torch.tensor([5, 10]))
    for other in (padded, garbage, batch[:1]):
        assert torch.allclose(alone, other, atol=1e-6)
    assert not torch.allclose(batch[0], batch[1], atol=1e-3)


def test_unpadded_output_is_the_reference_computation() -> None:
    """Without padding, packing changes nothing: the reference's plain GRU / LSTM forward."""
    gru, lstm = encoders()
    ids = torch.tensor([[1, 5, 9, 12, 3], [1, 4, 4, 8, 3]])
    lengths = torch.tensor([5, 5])
    with torch.no_grad():
        _, hidden = gru.gru(gru.embedding(ids))  # [2 directions, B, 4]
        expected = torch.cat([hidden[0], hidden[1]], dim=-1)
        assert torch.allclose(gru(ids, lengths), expected / expected.norm(dim=-1, keepdim=True), atol=1e-6)
        steps, _ = lstm.lstm(lstm.embedding(ids))
        expected = lstm.fc(steps.max(dim=1).values)
        assert torch.allclose(lstm(ids, lengths), expected / expected.norm(dim=-1, keepdim=True), atol=1e-6)


def test_encoder_defaults_follow_the_reference() -> None:
    gru = BiGRUEncoder(nn.Embedding(10, 300))
    assert (gru.gru.input_size, gru.gru.hidden_size, gru.gru.bidirectional) == (300, 256, True)
    assert gru.embed_dim == 512 and gru.gru.num_layers == 1
    lstm = LSTMEncoder(nn.Embedding(10, 300))
    assert (lstm.lstm.input_size, lstm.lstm.hidden_size, lstm.dropout.p) == (300, 1024, 0.1)
    assert (lstm.fc.in_features, lstm.fc.out_features) == (1024, 512)
    with pytest.raises(ValueError, match="lengths"):
        gru(torch.tensor([[1, 3, 0]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="even"):
        BiGRUEncoder(nn.Embedding(10, 3), embed_dim=7)


# ---------------------------------------------------------------- processor


def test_word_processor_text_and_image() -> None:
    vocab = Vocabulary(["is", "red", "has", "long", "sleeves"])
    processor = WordProcessor(vocab, max_length=6)
    out = processor.text(["is red <and> has long sleeves", "is blue", ""])
    assert out["input_ids"].dtype == torch.long and out["input_ids"].shape == (3, 6)
    assert out["lengths"].tolist() == [6, 4, 2]
    assert out["input_ids"][0].tolist() == [START, 5, 6, 2, 7, END]  # truncated, still ends with <end>
    assert out["input_ids"][1].tolist() == [START, 5, 4, END, 0, 0]  # "blue" -> <unk>
    assert out["attention_mask"].sum(1).tolist() == [6, 4, 2]

    # tall image: padded to a square with white, resized to 256, centre crop 224, ImageNet statistics
    image = Image.new("RGB", (100, 300), (0, 0, 0))
    host = processor.image(image)
    assert host.shape == (3, 224, 224) and host.dtype == torch.uint8
    pixels = processor.normalize(host)
    assert pixels.shape == (3, 224, 224) and pixels.dtype == torch.float32
    white = (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    black = -torch.tensor([0.485, 0.456, 0.406]) / torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(pixels[:, 112, 0], white, atol=1e-4)  # left padding
    assert torch.allclose(pixels[:, 112, 112], black, atol=1e-4)
    gray = processor.image(Image.new("L", (50, 40), 128))
    assert gray.shape == (3, 224, 224)

    again = pickle.loads(pickle.dumps(processor))  # runs in DataLoader workers
    assert torch.equal(again.image(image), host)
    assert torch.equal(again.text(["is red"])["input_ids"], processor.text(["is red"])["input_ids"])
