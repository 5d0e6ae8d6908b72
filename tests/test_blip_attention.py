"""BLIP's attention through SDPA (pipeline/models/blip/attention.py) computes what transformers' eager
modules compute: the same parameters, the same embeddings, loss and gradients up to float rounding."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_model_case import TEXTS, batch_of, make

from coir.common.errors import ConfigError
from coir.pipeline.models.blip.attention import SdpaBlipAttention, SdpaBlipTextSelfAttention
from coir.pipeline.models.blip.config import BlipModelConfig
from coir.pipeline.models.export import load_export, save_export
from coir.pipeline.models.registry import build_model

SDPA = {SdpaBlipAttention, SdpaBlipTextSelfAttention}


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    from coir.pipeline.models.blip.tokenizer import train_wordpiece

    return str(train_wordpiece(TEXTS * 3, tmp_path_factory.mktemp("tok") / "tok", vocab_size=120))


def _kinds(model: torch.nn.Module) -> set[type]:
    return {type(m) for m in model.modules()}


def test_sdpa_is_the_default_and_eager_keeps_transformers_modules(tok_dir: str) -> None:
    sdpa, eager = make(tok_dir), make(tok_dir, attention="eager")
    assert _kinds(sdpa) >= SDPA
    assert not SDPA & _kinds(eager)
    assert sdpa.state_dict().keys() == eager.state_dict().keys()
    for key, value in sdpa.state_dict().items():
        assert torch.equal(value, eager.state_dict()[key]), key


@pytest.mark.parametrize("name", ["case", "image-only", "text-only"])
def test_sdpa_gives_eager_embeddings_loss_and_gradients(tok_dir: str, name: str) -> None:
    sdpa, eager = make(tok_dir, name=name), make(tok_dir, name=name, attention="eager")
    batch = batch_of(sdpa, 8)
    lengths = batch["attention_mask"].sum(dim=1)
    assert lengths.min() < lengths.max(), "texts of one length would leave the padding mask untested"
    with torch.no_grad():
        sdpa.eval(), eager.eval()
        torch.testing.assert_close(sdpa.encode_query(batch), eager.encode_query(batch), atol=2e-5, rtol=1e-4)
        torch.testing.assert_close(
            sdpa.encode_target(batch["target_image"]), eager.encode_target(batch["target_image"])
        )
    sdpa.train(), eager.train()
    loss_sdpa, loss_eager = sdpa.loss(batch)["loss"], eager.loss(batch)["loss"]
    torch.testing.assert_close(loss_sdpa, loss_eager, atol=1e-5, rtol=1e-5)
    loss_sdpa.backward(), loss_eager.backward()
    grads = dict(eager.named_parameters())
    compared = 0
    for key, param in sdpa.named_parameters():
        if param.grad is None:
            assert grads[key].grad is None, key
            continue
        torch.testing.assert_close(param.grad, grads[key].grad, atol=1e-5, rtol=1e-3, msg=key)
        compared += 1
    assert compared > 10


def test_a_padded_token_changes_nothing_under_sdpa(tok_dir: str) -> None:
    """The padding mask reaches the fused kernel: changing a padded token's id leaves the query as it was."""
    model = make(tok_dir).eval()
    batch = batch_of(model, 4)
    row = int(torch.argmin(batch["attention_mask"].sum(dim=1)))
    padded = (batch["attention_mask"][row] == 0).nonzero()[-1].item()
    changed = {k: v.clone() for k, v in batch.items()}
    changed["input_ids"][row, padded] = 7
    with torch.no_grad():
        torch.testing.assert_close(model.encode_query(batch), model.encode_query(changed))
        changed["attention_mask"][row, padded] = 1  # now attended to: the query must move
        assert not torch.allclose(model.encode_query(batch)[row], model.encode_query(changed)[row])


def test_an_unknown_attention_is_an_error_naming_the_key(tok_dir: str) -> None:
    with pytest.raises(ConfigError, match=r"model\.attention.*'flash'"):
        make(tok_dir, attention="flash")


@pytest.mark.parametrize(("saved", "wanted"), [("sdpa", "eager"), ("eager", "sdpa"), ("sdpa", "sdpa")])
def test_a_model_started_from_an_export_gets_the_attention_asked_for(
    tok_dir: str, tmp_path: Path, saved: str, wanted: str
) -> None:
    """The export's modules arrive with the attention the export was built with; the config asked for
    wins either way, and an export reloads with its own."""
    export = save_export(make(tok_dir, attention=saved), tmp_path / "export")
    assert bool(SDPA & _kinds(load_export(export))) == (saved == "sdpa")
    started = build_model(BlipModelConfig(init_from=str(export), attention=wanted))
    kinds = _kinds(started)
    assert kinds >= SDPA if wanted == "sdpa" else not SDPA & kinds
