"""Training on single images (models with training_samples = "images", Pic2Word): gallery-format shards
stream as batches of `image` only, and the check before training refuses shards of the other kind and
the data options that only apply to triplets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_train_data import StubProcessor as TripletStubProcessor
from test_train_support import _image, write_shards

from coir.common.errors import ConfigError
from coir.datasets.shards.manifest import FORMAT
from coir.datasets.shards.writer import sha256_file
from coir.pipeline.config import DataConfig
from coir.pipeline.data import StreamState, TrainStream, check_samples, make_loader


class StubProcessor(TripletStubProcessor):
    """The triplet tests' stand-in, whose text must never be asked for: single images have none."""

    def text(self, texts: list[str]) -> dict[str, torch.Tensor]:
        raise AssertionError("single images have no text")


def write_gallery(folder: Path, count: int, kind: str | None = "gallery") -> Path:
    """One gallery-format shard (jpg + json per sample), with a coir manifest naming `kind`."""
    import webdataset as wds

    folder.mkdir(parents=True, exist_ok=True)
    with wds.TarWriter(str(folder / "gallery-000000.tar")) as sink:
        for i in range(count):
            colour = ("red", "green", "blue", "yellow")[i % 4]
            sink.write(
                {"__key__": f"img{i:03d}", "jpg": _image("circle", colour), "json": json.dumps({"id": i})}
            )
    if kind is not None:
        shard = folder / "gallery-000000.tar"
        entry = {
            "name": shard.name,
            "samples": count,
            "bytes": shard.stat().st_size,
            "sha256": sha256_file(shard),
        }
        manifest = {"format": FORMAT, "kind": kind, "num_samples": count, "shards": [entry]}
        (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_gallery_shards_stream_as_image_batches(tmp_path: Path) -> None:
    folder = write_gallery(tmp_path / "gallery", 10)
    cfg = DataConfig(shards=[], batch_size=4, num_workers=0, shuffle_buffer=4, shuffle_initial=2,
                     samples_per_epoch_per_worker=12)  # fmt: skip
    state = StreamState.fresh(0, 1)
    stream = TrainStream([str(folder / "gallery-000000.tar")], StubProcessor(), cfg, 3, 0, 1, state, "images")
    batches = list(make_loader(stream, cfg, seed=3, use_cuda=False))
    assert len(batches) == 3
    for batch in batches:
        assert {k for k in batch if not k.startswith("_")} == {"image"}
        assert batch["image"].shape == (4, 3, 8, 8) and len(batch["_keys"]) == 4
    # each image decoded from its own jpg: a red circle's centre is red
    red = [b["image"][i] for b in batches for i, key in enumerate(b["_keys"]) if int(key[3:]) % 4 == 0]
    assert red and all(image[0, 4, 4] > 0.7 * 255 and image[1, 4, 4] < 0.3 * 255 for image in red)  # uint8


def test_triplet_samples_are_skipped_when_single_images_are_expected(tmp_path: Path) -> None:
    """A sample without a jpg (a triplet) is a bad sample for an image model: skipped and counted."""
    triplets = write_shards(tmp_path / "triplets", shards=1, per_shard=3)
    gallery = write_gallery(tmp_path / "gallery", 4, kind=None)
    cfg = DataConfig(shards=[], batch_size=2, num_workers=0, shuffle_buffer=1, shuffle_initial=1,
                     samples_per_epoch_per_worker=4)  # fmt: skip
    state = StreamState.fresh(0, 1)
    shards = [str(triplets[0]), str(gallery / "gallery-000000.tar")]
    stream = TrainStream(shards, StubProcessor(), cfg, 3, 0, 1, state, "images")
    batches = list(make_loader(stream, cfg, seed=3, use_cuda=False))
    assert all(key.startswith("img") for b in batches for key in b["_keys"])
    assert batches[-1]["_bad"] > 0


def test_check_refuses_the_other_kind_of_shards_and_triplet_only_options(tmp_path: Path) -> None:
    gallery = write_gallery(tmp_path / "gallery", 2)
    triplets = write_gallery(tmp_path / "triplets", 2, kind="triplets")
    plain = write_gallery(tmp_path / "plain", 2, kind=None)  # no manifest (img2dataset output): not checked
    cfg = DataConfig(shards=[])
    for folder in (gallery, plain):
        check_samples([str(folder / "gallery-000000.tar")], "images", cfg)
    check_samples([str(triplets / "gallery-000000.tar")], "triplets", cfg)
    with pytest.raises(ConfigError, match=r"data\.shards.*triplets shards.*single images"):
        check_samples([str(triplets / "gallery-000000.tar")], "images", cfg)
    with pytest.raises(ConfigError, match=r"data\.shards.*gallery shards.*triplets"):
        check_samples([str(gallery / "gallery-000000.tar")], "triplets", cfg)
    with pytest.raises(ConfigError, match=r"data\.inputs"):
        check_samples([str(gallery / "gallery-000000.tar")], "images", DataConfig(inputs="features"))
    augment = DataConfig()
    augment.augment.enabled = True
    with pytest.raises(ConfigError, match=r"data\.augment\.enabled"):
        check_samples([str(gallery / "gallery-000000.tar")], "images", augment)
