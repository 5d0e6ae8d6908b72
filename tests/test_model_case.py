"""CASE and its baselines on the tiny preset: shapes, what the query depends on, objectives, options."""

from __future__ import annotations

import pickle

import pytest
import torch
from PIL import Image

from coir.pipeline.models.blip.config import BlipModelConfig
from coir.pipeline.models.blip.tokenizer import ENC, train_wordpiece
from coir.pipeline.models.flops import train_flops_per_sample
from coir.pipeline.models.registry import build_model

TEXTS = [
    "the circle is red",
    "make the square blue",
    "add a green triangle",
    "remove the small star",
    "the big circle is now yellow",
    "move the square to the left",
    "two red circles",
    "no shapes at all",
]
SIZE = 32  # tiny preset at 32 px: 16 patches, fast


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    return str(train_wordpiece(TEXTS * 3, tmp_path_factory.mktemp("tok") / "tok", vocab_size=120))


def make(tok_dir: str, **kw):
    torch.manual_seed(0)
    return build_model(BlipModelConfig(tokenizer=tok_dir, image_size=SIZE, **{"max_length": 12, **kw}))


def batch_of(model, n: int = 8, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    text = model.processor().text(TEXTS[:n])
    return {
        "query_image": torch.randn(n, 3, SIZE, SIZE, generator=g),
        "target_image": torch.randn(n, 3, SIZE, SIZE, generator=g),
        **text,
    }


def query(model, b):
    return model.encode_query(b)


@pytest.mark.parametrize("name", ["case", "image-only", "text-only"])
def test_shapes_and_unit_norm(tok_dir, name):
    model = make(tok_dir, name=name).eval()
    b = batch_of(model, 4)
    with torch.no_grad():
        q, t = query(model, b), model.encode_target(b["target_image"])
    assert q.shape == (4, 64) and t.shape == (4, 64)
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(4))
    torch.testing.assert_close(t.norm(dim=-1), torch.ones(4))
    assert model.score(q, t).shape == (4, 4)


@pytest.mark.parametrize(
    "name,uses_image,uses_text",
    [("case", True, True), ("image-only", True, False), ("text-only", False, True)],
)
def test_query_depends_on_the_right_inputs(tok_dir, name, uses_image, uses_text):
    model = make(tok_dir, name=name).eval()
    b = batch_of(model, 2)
    other_image = dict(b, query_image=torch.randn_like(b["query_image"]))
    other_text = dict(b, **model.processor().text(["two red circles", "no shapes at all"]))
    with torch.no_grad():
        q, qi, qt = query(model, b), query(model, other_image), query(model, other_text)
    assert (not torch.allclose(q, qi, atol=1e-5)) == uses_image
    assert (not torch.allclose(q, qt, atol=1e-5)) == uses_text


@pytest.mark.parametrize("name", ["case", "text-only"])
def test_untrained_query_already_tells_texts_apart(tok_dir, name):
    """From-scratch training needs a text path that is not washed out at initialisation.

    With BERT's initializer range (0.02) at the tiny width, the [ENC] output for one image was
    the same for every text (cosine 0.999) and training never found the text.
    """
    model = make(tok_dir, name=name).eval()
    b = batch_of(model, len(TEXTS))
    b["query_image"] = b["query_image"][:1].expand_as(b["query_image"])  # one image, eight texts
    with torch.no_grad():
        q = query(model, b)
    cosines = (q @ q.T)[~torch.eye(len(TEXTS), dtype=torch.bool)]
    assert cosines.mean() < 0.9, cosines.mean()


def test_case_query_cross_attends_to_every_patch_token(tok_dir):
    model = make(tok_dir).eval()
    b = batch_of(model, 2)
    vision = model.blip_config.vision_config
    patches = (SIZE // vision.patch_size) ** 2
    seen = []
    hooks = [
        layer.crossattention.register_forward_pre_hook(
            lambda mod, args, kwargs: seen.append(tuple(kwargs["encoder_hidden_states"].shape)),
            with_kwargs=True,
        )
        for layer in model.text_encoder.encoder.layer
    ]
    with torch.no_grad():
        q = query(model, b)
    for hook in hooks:
        hook.remove()
    # every cross-attention layer gets the [CLS] token and all patch tokens of the reference image
    assert seen == [(2, 1 + patches, vision.hidden_size)] * len(model.text_encoder.encoder.layer)

    ids, mask = b["input_ids"], b["attention_mask"]
    with torch.no_grad():
        tokens = model.vision_tokens(b["query_image"])
        torch.testing.assert_close(model.grounded_query(tokens, ids, mask), q)
        cls_only = model.grounded_query(tokens[:, :1], ids, mask)
        # one patch token changed; the [CLS] token and the other patches kept as they are
        one_patch = tokens.clone()
        one_patch[:, 1 + patches // 2] += 3 * tokens[:, 1:].std()
        q_patch = model.grounded_query(one_patch, ids, mask)
    assert not torch.allclose(cls_only, q, atol=1e-4)
    assert not torch.allclose(q_patch, q, atol=1e-4)


def test_encoder_token_replaces_the_first_token(tok_dir):
    model = make(tok_dir).eval()
    b = batch_of(model, 2)
    seen = {}
    model.text_encoder.register_forward_pre_hook(
        lambda mod, args, kwargs: seen.update(ids=kwargs["input_ids"].clone()), with_kwargs=True
    )
    with torch.no_grad():
        q = query(model, b)
    enc_id = model.tokenizer.convert_tokens_to_ids(ENC)
    assert b["input_ids"][0, 0] == model.tokenizer.cls_token_id
    assert (seen["ids"][:, 0] == enc_id).all()
    assert torch.equal(seen["ids"][:, 1:], b["input_ids"][:, 1:])
    # whatever the first token was, the query is the same
    ids = b["input_ids"].clone()
    ids[:, 0] = model.tokenizer.mask_token_id
    with torch.no_grad():
        torch.testing.assert_close(model.encode_query({**b, "input_ids": ids}), q)


def test_loss_falls_when_overfitting_a_fixed_batch(tok_dir):
    model = make(tok_dir).train()
    b = batch_of(model, 4)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for _ in range(60):
        loss = model.loss(b)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # single steps are noisy (Adam on 4 samples); the tail of the curve is not
    assert sum(losses[-5:]) / 5 < 0.3 * losses[0], losses


def test_reverse_and_symmetric_terms(tok_dir):
    model = make(tok_dir, reverse_weight=0.0).eval()
    b = batch_of(model, 4)
    with torch.no_grad():
        plain = model.loss(b)
        assert set(plain) == {"loss", "loss_q2t", "temperature"}
        torch.testing.assert_close(plain["loss"], plain["loss_q2t"])
        model.cfg.reverse_weight = 0.5
        rev = model.loss(b)
        assert "loss_reverse" in rev
        torch.testing.assert_close(rev["loss"], rev["loss_q2t"] + 0.5 * rev["loss_reverse"])
        model.cfg.symmetric = True
        sym = model.loss(b)
        assert {"loss_t2q", "loss_reverse"} <= set(sym)
        torch.testing.assert_close(model(b)["loss"], sym["loss"])  # forward = loss (for DDP/DeepSpeed)
    assert not torch.isclose(rev["loss"], plain["loss"])
    assert not torch.isclose(sym["loss"], rev["loss"])
    torch.testing.assert_close(sym["loss_q2t"], plain["loss_q2t"])


def test_freezing_marks_exactly_the_right_parameters(tok_dir):
    model = make(tok_dir, freeze_vision=True, freeze_projections=True)
    frozen_prefixes = ("vision_model.", "vision_proj.", "text_proj.")
    for name, p in model.named_parameters():
        assert p.requires_grad == (not name.startswith(frozen_prefixes)), name
    model.loss(batch_of(model, 4))["loss"].backward()
    assert all(p.grad is None for n, p in model.named_parameters() if n.startswith(frozen_prefixes))
    assert model.text_encoder.encoder.layer[0].crossattention.self.query.weight.grad is not None

    only_vision = make(tok_dir, freeze_vision=True)
    assert only_vision.vision_proj.weight.requires_grad and only_vision.text_proj.weight.requires_grad
    text_only = make(tok_dir, name="text-only")
    for name, p in text_only.named_parameters():
        assert p.requires_grad == (".crossattention." not in name), name


def test_fixed_temperature_is_not_a_parameter(tok_dir):
    model = make(tok_dir, learnable_temperature=False, temperature=0.05)
    assert "temp" not in dict(model.named_parameters())
    assert model.loss(batch_of(model, 2))["temperature"].item() == pytest.approx(0.05)
    assert isinstance(make(tok_dir).temp, torch.nn.Parameter)


def test_gradient_checkpointing_gives_the_same_loss_and_gradients(tok_dir):
    plain = make(tok_dir).train()
    ckpt = make(tok_dir, gradient_checkpointing=True).train()
    ckpt.load_state_dict(plain.state_dict())
    b = batch_of(plain, 4)
    saved = []
    for model in (plain, ckpt):  # checkpointing keeps fewer activations for the backward pass
        count = [0]

        def pack(t, count=count):
            count[0] += 1
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = model.loss(b)["loss"]
        loss.backward()
        saved.append((loss, count[0]))
    (l1, n1), (l2, n2) = saved
    assert n2 < n1 / 2, (n1, n2)
    torch.testing.assert_close(l1, l2)
    g1 = dict(plain.named_parameters())
    for name, p in ckpt.named_parameters():
        torch.testing.assert_close(p.grad, g1[name].grad, atol=1e-6, rtol=1e-4, msg=name)


def test_processor_is_picklable_and_shapes_inputs(tok_dir):
    model = make(tok_dir, max_length=12)
    proc = pickle.loads(pickle.dumps(model.processor()))
    img = proc.image(Image.new("L", (50, 70), 128))
    assert img.shape == (3, SIZE, SIZE) and img.dtype == torch.uint8 and bool((img == 128).all())
    pixels = proc.normalize(img[None])  # the device part: BLIP's statistics
    expected = (128 / 255 - torch.tensor(proc.mean)) / torch.tensor(proc.std)
    assert pixels.dtype == torch.float32 and torch.allclose(pixels[0, :, 3, 5], expected, atol=1e-6)
    text = proc.text(["the circle is red", "a " * 40])
    assert text["input_ids"].shape == text["attention_mask"].shape == (2, 12)
    assert text["input_ids"].dtype == torch.long
    assert text["attention_mask"][0].sum() < 12 and text["attention_mask"][1].sum() == 12


def test_flops_per_sample_is_counted_per_sample(tok_dir):
    model = make(tok_dir)
    f2 = train_flops_per_sample(model, batch_of(model, 2))
    f4 = train_flops_per_sample(model, batch_of(model, 4))
    assert f2 > 1e6
    assert f4 == pytest.approx(f2, rel=0.05)
    assert all(p.grad is None for p in model.parameters())


def test_temperature_is_one_element_and_older_zero_dim_saves_still_load(tok_dir):
    # [1]-shaped for DeepSpeed (0-dim parameters break its fp32 clipping); a 0-dim scalar to the loss
    model = make(tok_dir)
    assert model.temp.shape == (1,) and model.temperature().ndim == 0
    state = model.state_dict()
    state["temp"] = torch.tensor(0.05)  # as exports written before the change hold it
    fresh = make(tok_dir)
    fresh.load_state_dict(state)
    assert fresh.temp.shape == (1,) and fresh.temperature().item() == pytest.approx(0.05)
