"""data.decode=device (pipeline/device_decode.py): JPEGs at the model's size travel as bytes and are
decoded by the training step; everything else is decoded in the workers as before.

Stated tolerance: none on the CPU, where torchvision decodes with libjpeg-turbo as simplejpeg does: the
device-decoded batch, and its loss, equal the host path's to the bit. (On CUDA, nvJPEG's pixels differ
slightly; benchmarks/RESULTS.md gives the difference measured on an H200.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from test_loader_uint8 import SIZE, case, jpeg, photo  # noqa: F401 (case: the module's fixture)

from coir.common.errors import ConfigError
from coir.pipeline.augment import AugmentConfig
from coir.pipeline.config import DataConfig, TrainConfig, check_values
from coir.pipeline.data import ImageDecoder, StreamState, TrainStream, make_loader, split_batch
from coir.pipeline.decode import PixelDecoder
from coir.pipeline.device_decode import JpegBatch, frame_header, ships_as_bytes
from coir.pipeline.models.pixels import to_model_inputs


def png(image: Image.Image) -> bytes:
    import io

    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_only_baseline_jpegs_at_the_models_size_travel_as_bytes() -> None:
    assert ships_as_bytes(jpeg(photo(SIZE, SIZE, 0)), SIZE)
    assert ships_as_bytes(jpeg(photo(SIZE, SIZE, 0, "L")), SIZE)  # grey: nvJPEG's RGB output repeats it
    assert not ships_as_bytes(jpeg(photo(SIZE, SIZE, 0), progressive=True), SIZE)
    assert not ships_as_bytes(jpeg(photo(SIZE, SIZE, 0, "CMYK")), SIZE)
    assert not ships_as_bytes(jpeg(photo(50, 30, 0)), SIZE)
    assert not ships_as_bytes(png(photo(SIZE, SIZE, 0)), SIZE)
    assert not ships_as_bytes(b"\xff\xd8 not a jpeg", SIZE)
    whole = jpeg(photo(SIZE, SIZE, 0))
    assert frame_header(whole) == (0xC0, 8, SIZE, SIZE)
    assert not ships_as_bytes(whole[: len(whole) // 2], SIZE)  # truncated: no end marker
    assert not ships_as_bytes(whole + b"trailing", SIZE)
    assert frame_header(jpeg(photo(SIZE, SIZE, 0), progressive=True))[0] == 0xC2


def _mixed_shard(path: Path) -> None:
    """8 triplets: queries of every kind (bytes for the device, or decoded in the worker)."""
    import webdataset as wds

    queries = [
        jpeg(photo(SIZE, SIZE, 1)),
        jpeg(photo(SIZE, SIZE, 2, "L")),
        jpeg(photo(SIZE, SIZE, 3), progressive=True),
        jpeg(photo(50, 30, 4)),
        png(photo(SIZE, SIZE, 5)),
        jpeg(photo(SIZE, SIZE, 6)),
        jpeg(photo(64, 64, 7)),
        jpeg(photo(SIZE, SIZE, 8, "CMYK")),
    ]
    with wds.TarWriter(str(path)) as sink:
        for i, query in enumerate(queries):
            target = jpeg(photo(SIZE, SIZE, 20 + i))
            sink.write({"__key__": f"k{i}", "query.jpg": query, "target.jpg": target, "txt": f"make it {i}"})


@pytest.mark.parametrize("workers", [0, 1])
def test_device_decoded_batches_and_loss_equal_the_host_path(case, tmp_path: Path, workers: int) -> None:  # noqa: F811
    _mixed_shard(tmp_path / "mixed-000000.tar")
    shards = [str(tmp_path / "mixed-000000.tar")]
    proc = case.processor()

    def batches(decode: str) -> list[dict]:
        config = DataConfig(
            batch_size=4,
            num_workers=workers,
            shuffle_buffer=8,
            shuffle_initial=8,
            samples_per_epoch_per_worker=8,
            decode=decode,
        )
        stream = TrainStream(shards, proc, config, 5, 0, 1, StreamState.fresh(workers, 1))
        return [split_batch(b) for b in make_loader(stream, config, seed=5, use_cuda=False)]

    host, device = batches("host"), batches("device")
    assert len(host) == len(device) == 2
    encoded_rows = 0
    for (host_inputs, host_meta), (device_inputs, device_meta) in zip(host, device, strict=True):
        assert host_meta["_keys"] == device_meta["_keys"]
        queries, targets = device_inputs["query_image"], device_inputs["target_image"]
        assert isinstance(queries, JpegBatch) and isinstance(targets, JpegBatch)
        assert targets.pixels is None and targets.rows.tolist() == [0, 1, 2, 3]  # all at the size: bytes
        # queries k0, k1 (grey) and k5 are at the size; the others are decoded in the worker
        shipped = [i for i, key in enumerate(device_meta["_keys"]) if key in ("k0", "k1", "k5")]
        assert queries.rows.tolist() == shipped
        encoded_rows += len(shipped)
        expected = to_model_inputs(host_inputs, proc, "cpu")
        got = to_model_inputs(device_inputs, proc, "cpu")
        for key in ("query_image", "target_image"):
            assert torch.equal(got[key], expected[key]), key
        torch.manual_seed(1)
        loss = case.loss(got)["loss"]
        torch.manual_seed(1)
        assert torch.equal(loss, case.loss(expected)["loss"])
    assert 0 < encoded_rows < 8  # both kinds were in the batches


def test_a_failed_sample_leaves_no_bytes_behind_in_its_row(case) -> None:  # noqa: F811
    proc = case.processor()
    decode = ImageDecoder(proc, DataConfig(batch_size=3, decode="device"))
    pixels = PixelDecoder(proc)
    at_size = [jpeg(photo(SIZE, SIZE, seed)) for seed in range(5)]
    other = jpeg(photo(50, 30, 9))

    def sample(query: bytes, target: bytes) -> dict[str, bytes]:
        return {"query.jpg": query, "target.jpg": target, "txt": b"is red now"}

    rows = [decode(sample(at_size[0], at_size[1]), None)]
    with pytest.raises(OSError):
        decode(sample(at_size[2], png(photo(SIZE, SIZE, 3))[:40]), None)  # its query's bytes were kept
    rows += [decode(sample(other, at_size[3]), None), decode(sample(at_size[4], other), None)]
    batch = decode.collate(rows)
    assert batch["query_image"].rows.tolist() == [0, 2] and batch["target_image"].rows.tolist() == [0, 1]
    queries = batch["query_image"].decode("cpu")
    targets = batch["target_image"].decode("cpu")
    assert torch.equal(queries, torch.stack([pixels.tensor(b) for b in (at_size[0], other, at_size[4])]))
    assert torch.equal(targets, torch.stack([pixels.tensor(b) for b in (at_size[1], at_size[3], other)]))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"decode": "gpu"}, "must be one of host, device"),
        ({"decode": "device", "augment": AugmentConfig(enabled=True)}, "cannot augment"),
        ({"decode": "device", "inputs": "features"}, "not data.inputs=features"),
        ({"decode": "device", "image_mode": "L"}, "RGB"),
    ],
)
def test_device_decoding_options_that_cannot_work_are_errors_naming_the_key(data: dict, message: str) -> None:
    config = TrainConfig(data=DataConfig(shards=["x"], **data))
    with pytest.raises(ConfigError, match=rf"data\.decode.*{message}"):
        check_values(config)


def test_training_with_device_decoding_takes_the_host_paths_steps(tmp_path: Path) -> None:
    """The trainer end to end (config, loader workers, pinned JpegBatch, step): the same losses, to the
    bit on the CPU, with data.decode=device as with host decoding."""
    import subprocess

    from test_train_support import (
        _image,
        child_env,
        make_tokenizer,
        read_jsonl,
        train_command,
        write_recipe,
        write_shards,
    )

    assert ships_as_bytes(_image("circle", "red"), 32)  # the shards' JPEGs do travel as bytes
    shards = tmp_path / "shards"
    write_shards(shards, shards=2, per_shard=12)
    recipe = write_recipe(tmp_path, shards, make_tokenizer(tmp_path))
    losses = {}
    for decode in ("host", "device"):
        run = tmp_path / decode
        args = [f"run_dir={run}", f"data.decode={decode}", "optim.total_steps=4", "checkpoint.every_steps=0"]
        result = subprocess.run(
            train_command(recipe, *args), env=child_env(), capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        losses[decode] = [r["loss"] for r in read_jsonl(run / "logs" / "train.jsonl") if "loss" in r]
        assert "has no effect" not in result.stderr + result.stdout  # the device path did run
    assert len(losses["host"]) == 4 and len(set(losses["host"])) > 1
    assert losses["device"] == losses["host"]
