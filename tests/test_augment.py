"""Training augmentation (pipeline/augment.py): crop statistics, the composed-retrieval-safe flip,
RandAugment, determinism per sample, and exact resume of an augmented stream."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_train_data import batches, config
from test_train_support import write_shards

from coir.common.errors import ConfigError
from coir.pipeline.augment import AugmentConfig, TripletAugment, crop_box, swap_left_right
from coir.pipeline.config import load_train_config
from coir.pipeline.data import StreamState

RED, BLUE, GREEN, YELLOW = (255, 0, 0), (0, 0, 255), (0, 255, 0), (255, 255, 0)


def halves(left: tuple[int, int, int], right: tuple[int, int, int], size: int = 32) -> Image.Image:
    pixels = np.zeros((size, size, 3), dtype=np.uint8)
    pixels[:, : size // 2] = left
    pixels[:, size // 2 :] = right
    return Image.fromarray(pixels)


def left_colour(img: Image.Image) -> tuple[int, ...]:
    return tuple(int(v) for v in np.asarray(img)[img.height // 2, 1])


def plain(**changes) -> TripletAugment:
    """Whole-image crops and no RandAugment: only the flip changes anything."""
    base = dict(enabled=True, crop_scale=[1.0, 1.0], crop_ratio=[1.0, 1.0], randaugment_ops=0)
    return TripletAugment(AugmentConfig(**(base | changes)), image_size=None)


@pytest.mark.parametrize("scale", [(0.5, 1.0), (0.08, 0.2)])
def test_crop_area_and_aspect_stay_in_the_configured_ranges(scale) -> None:
    rng = random.Random(0)
    width, height = 240, 240  # square: every area fraction up to 1 has a crop of an allowed aspect
    areas, ratios = [], []
    for _ in range(3000):
        left, top, w, h = crop_box(width, height, scale, (3 / 4, 4 / 3), rng)
        assert left >= 0 and left + w <= width and top >= 0 and top + h <= height
        areas.append(w * h / (width * height))
        ratios.append(w / h)
    # rounding to whole pixels moves the area a little beyond the drawn fraction
    assert scale[0] * 0.97 <= min(areas) and max(areas) <= scale[1] * 1.03
    assert min(areas) < scale[0] + 0.05 * (scale[1] - scale[0])  # the whole range is visited
    assert max(areas) > scale[1] - 0.05 * (scale[1] - scale[0])
    assert min(ratios) >= 3 / 4 * 0.95 and max(ratios) <= 4 / 3 * 1.05


def test_flip_mirrors_both_images_and_swaps_left_and_right_in_the_text() -> None:
    ref, tgt = halves(RED, BLUE), halves(GREEN, YELLOW)
    out_ref, out_tgt, text = plain(flip_prob=1.0)(
        ref, tgt, "Put the dog on the left, not the Right", random.Random(1)
    )
    assert left_colour(out_ref) == BLUE and left_colour(out_tgt) == YELLOW
    assert text == "Put the dog on the right, not the Left"


def test_no_flip_when_switched_off() -> None:
    ref, tgt = halves(RED, BLUE), halves(GREEN, YELLOW)
    for seed in range(20):
        out_ref, out_tgt, text = plain(flip="none", flip_prob=1.0)(
            ref, tgt, "the left cup", random.Random(seed)
        )
        assert left_colour(out_ref) == RED and left_colour(out_tgt) == GREEN and text == "the left cup"


def test_flip_is_drawn_once_per_triplet_at_its_probability() -> None:
    ref, tgt = halves(RED, BLUE), halves(GREEN, YELLOW)
    flips = []
    for seed in range(400):
        out_ref, out_tgt, text = plain()(ref, tgt, "move it left", random.Random(seed))
        flipped = left_colour(out_ref) == BLUE
        assert (left_colour(out_tgt) == YELLOW) == flipped and (text == "move it right") == flipped
        flips.append(flipped)
    assert 0.4 < sum(flips) / len(flips) < 0.6


def test_side_words_and_their_compounds_swap_other_words_do_not() -> None:
    assert swap_left_right("LEFT leftmost right-hand rightwards") == "RIGHT rightmost left-hand leftwards"
    assert swap_left_right("leftover bright copyright rightly") == "leftover bright copyright rightly"


def test_randaugment_and_crop_are_deterministic_per_seed_and_keep_the_size() -> None:
    aug = TripletAugment(AugmentConfig(enabled=True), image_size=24)
    rng = np.random.default_rng(0)
    ref = Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8))
    tgt = Image.fromarray(rng.integers(0, 255, (50, 40, 3), dtype=np.uint8))

    def run(seed: int) -> list[np.ndarray]:
        a, b, _ = aug(ref, tgt, "x", random.Random(seed))
        assert a.size == b.size == (24, 24)
        return [np.asarray(a), np.asarray(b)]

    assert all(np.array_equal(x, y) for x, y in zip(run(5), run(5), strict=True))
    assert any(not np.array_equal(run(5)[0], run(s)[0]) for s in range(6, 9))


def test_randaugment_ops_change_pixels_at_blips_level() -> None:
    # with crops off and the flip off, any change comes from RandAugment (2 ops, each p = 0.5)
    img = Image.fromarray(np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    aug = TripletAugment(
        AugmentConfig(enabled=True, crop_scale=[1.0, 1.0], crop_ratio=[1.0, 1.0], flip="none"), None
    )
    changed = [
        not np.array_equal(np.asarray(aug(img, img, "", random.Random(s))[0]), np.asarray(img))
        for s in range(200)
    ]
    # P(no op applied, or only Identity/Brightness/Sharpness at factor 1.0) = (0.5 + 0.5 * 0.3) ** 2 ~ 0.42
    assert 0.45 < sum(changed) / len(changed) < 0.7


def test_augmented_stream_repeats_with_the_seed_and_resumes_exactly(tmp_path: Path) -> None:
    shards = write_shards(tmp_path, shards=2, per_shard=10)
    cfg = config(augment=AugmentConfig(enabled=True))
    full = batches(shards, cfg, StreamState.fresh(2, 1))
    again = batches(shards, cfg, StreamState.fresh(2, 1))
    assert all(torch.equal(a["query_image"], b["query_image"]) for a, b in zip(full, again, strict=True))
    plain_images = batches(shards, config(), StreamState.fresh(2, 1))
    assert not torch.equal(full[0]["query_image"], plain_images[0]["query_image"])  # it does augment
    state = StreamState.fresh(2, 1)
    batches(shards, cfg, state, limit=3)
    rest = batches(shards, cfg, dataclasses.replace(state, raw=list(state.raw), bad=list(state.bad)))
    assert [b["_keys"] for b in rest] == [b["_keys"] for b in full[3:]]
    for a, b in zip(rest, full[3:], strict=True):
        assert torch.equal(a["query_image"], b["query_image"]) and torch.equal(
            a["target_image"], b["target_image"]
        )


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("data.augment.crop_scale=[0.0,1.0]", "data.augment.crop_scale"),
        ("data.augment.flip=mirror", "data.augment.flip"),
        ("data.augment.randaugment_level=11", "data.augment.randaugment_level"),
    ],
)
def test_bad_augment_values_name_their_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load_train_config("configs/pretrain/case_tiny.yaml", [override])


def test_features_cannot_be_augmented() -> None:
    with pytest.raises(ConfigError, match="data.augment.enabled"):
        load_train_config(
            "configs/pretrain/case_tiny.yaml", ["data.inputs=features", "data.augment.enabled=true"]
        )


@pytest.mark.parametrize(
    ("recipe", "enabled"),
    [
        ("configs/pretrain/case_tiny.yaml", False),
        ("configs/pretrain/case_base.yaml", True),
        ("configs/finetune/cirr_case.yaml", True),
        ("configs/finetune/fashioniq_case.yaml", True),
    ],
)
def test_recipes_switch_augmentation_as_documented(recipe: str, enabled: bool) -> None:
    aug = load_train_config(recipe).data.augment
    assert aug.enabled is enabled
    if enabled:  # BLIP's transform_train, with the composed-retrieval flip
        assert aug.crop_scale == [0.5, 1.0] and aug.flip == "swap"
        assert (aug.randaugment_ops, aug.randaugment_level) == (2, 5)
