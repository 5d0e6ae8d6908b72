"""DataLoader workers refill batch memory the training process let go of, and never memory it still holds."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest
import torch
from test_device_decode import _mixed_shard
from test_loader_uint8 import SIZE
from test_train_data import StubProcessor, config
from test_train_support import write_shards

from coir.pipeline.batch_pool import (
    FREE,
    POOL_KEY,
    TAKEN,
    BufferPool,
    Releaser,
    release_board,
    slots_per_worker,
)
from coir.pipeline.data import StreamState, TrainStream, make_loader, open_batches
from coir.pipeline.device_decode import JpegBatch


def test_a_slot_is_reused_only_after_every_reference_to_its_batch_is_gone() -> None:
    board = release_board(1, 3)
    pool, releaser = BufferPool(board[0].numpy(), 0), Releaser(board)
    first, slot = pool.take(2, 4, 4, 3)
    assert slot == 0 and board[0, 0] == TAKEN and first.shape == (2, 4, 4, 3)
    # what the training process receives: its own mapping of the memory (a separate storage here)
    received = first.clone().permute(0, 3, 1, 2)
    batch = {"image": received, POOL_KEY: (0, [("image", slot)])}
    releaser.track(batch)
    view = batch["image"][1].numpy()  # a numpy view of one row outlives the batch
    del batch, received
    releaser.sweep()
    assert board[0, 0] == TAKEN  # still referenced through the view
    assert pool.take(2, 4, 4, 3)[1] == 1
    del view
    releaser.sweep()
    assert board[0, 0] == FREE and board[0, 1] == TAKEN
    again, reused = pool.take(2, 4, 4, 3)
    assert reused == 0 and again.data_ptr() == first.data_ptr() and pool.fresh == 2  # no new memory


def test_a_full_pool_gives_one_off_buffers_and_a_free_slot_of_another_size_is_replaced() -> None:
    board = release_board(1, 2)
    pool = BufferPool(board[0].numpy(), 0)
    taken = [pool.take(8) for _ in range(2)]
    extra, slot = pool.take(8)
    assert slot is None and extra.numel() == 8 and pool.fresh == 3  # the worker never waits
    pool.give_back(taken[0][1])  # a buffer that did not leave the worker
    bigger, slot = pool.take(16)
    assert slot == taken[0][1] and bigger.numel() == 16 and pool.buffers[slot].numel() == 16


def test_without_workers_a_slot_is_free_once_nothing_but_the_pool_refers_to_it() -> None:
    pool = BufferPool.for_stream(None, slots=2)  # num_workers=0: the training process's own pool
    assert pool is not None and pool.flags is None
    first, slot = pool.take(4, 3)
    view = first[1].numpy()
    del first
    assert pool.take(4, 3)[1] == 1  # slot 0 still referenced through the view (slot 1's result dropped)
    del view
    again, reused = pool.take(4, 3)
    assert reused == 0 and pool.fresh == 2


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> list[Path]:
    return write_shards(tmp_path_factory.mktemp("pool-shards"), shards=2, per_shard=12)


def stream_batches(shards, workers: int, hold: int, pooled: bool = True) -> tuple[list, list]:
    """Every batch's images as read when it arrived, and the first `hold` batches kept to the end."""
    cfg = config(num_workers=workers, samples_per_epoch_per_worker=60, batch_size=4, prefetch_factor=2)
    stream = TrainStream(
        [str(s) for s in shards], StubProcessor(), cfg, 3, 0, 1, StreamState.fresh(workers, 1)
    )
    loader = make_loader(stream, cfg, seed=3, use_cuda=False)
    arrived, held = [], []
    # a loader iterated directly has no release board: its workers give every batch new memory
    with open_batches(loader) if pooled else contextlib.nullcontext(loader) as batches:
        for batch in batches:
            arrived.append(
                {k: batch[k].clone() for k in ("query_image", "target_image")} | {"pool": batch.get(POOL_KEY)}
            )
            if len(held) < hold:
                held.append(batch)
    return arrived, held


def test_worker_batches_reuse_memory_and_equal_the_in_process_stream(shards) -> None:
    arrived, held = stream_batches(shards, workers=1, hold=2)
    reference, _ = stream_batches(shards, workers=0, hold=0)
    assert len(arrived) == len(reference) == 15
    for got, want in zip(arrived, reference, strict=True):
        assert torch.equal(got["query_image"], want["query_image"])
        assert torch.equal(got["target_image"], want["target_image"])
    # the batches held to the end were never written over, though the worker refilled other slots
    for batch, first in zip(held, arrived[: len(held)], strict=True):
        assert torch.equal(batch["query_image"], first["query_image"])
        assert torch.equal(batch["target_image"], first["target_image"])
    slots = [slot for batch in arrived for _, slot in batch["pool"][1]]
    assert len(slots) == 30 and len(set(slots)) <= slots_per_worker(2, 2)  # 30 buffers from a few slots
    held_slots = {slot for batch in held for _, slot in batch[POOL_KEY][1]}
    later = [slot for batch in arrived[2:] for _, slot in batch["pool"][1]]
    assert not held_slots & set(later)  # never handed out again while held


def test_without_a_board_every_batch_gets_new_memory(shards) -> None:
    arrived, _ = stream_batches(shards, workers=1, hold=0, pooled=False)
    assert len(arrived) == 15 and all(batch["pool"] is None for batch in arrived)


def test_batches_held_in_the_training_process_are_not_written_over(shards) -> None:
    arrived, held = stream_batches(shards, workers=0, hold=3)
    assert len(arrived) == 15
    for batch, first in zip(held, arrived[:3], strict=True):
        assert torch.equal(batch["query_image"], first["query_image"])
        assert torch.equal(batch["target_image"], first["target_image"])


class SizedProcessor(StubProcessor):
    """The stub at the mixed shard's size, so its JPEGs at that size travel as bytes (data.decode=device)."""

    image_size = SIZE

    def image(self, image) -> torch.Tensor:
        return torch.from_numpy(np.array(image.convert("RGB").resize((SIZE, SIZE)))).permute(2, 0, 1)

    def passes_through(self, width: int, height: int) -> bool:
        return width == height == SIZE


def test_device_decoding_batches_keep_their_pooled_host_rows_while_held(tmp_path: Path) -> None:
    # the host-decoded rows of a JpegBatch live in a pooled buffer: held batches must keep them
    _mixed_shard(tmp_path / "mixed-000000.tar")
    cfg = config(num_workers=1, samples_per_epoch_per_worker=60, batch_size=4, decode="device")
    state = StreamState.fresh(1, 1)
    stream = TrainStream([str(tmp_path / "mixed-000000.tar")], SizedProcessor(), cfg, 5, 0, 1, state)

    def pixels(value) -> torch.Tensor:  # a copy (on the CPU a JpegBatch decodes into its own pixels)
        return (value.decode("cpu") if isinstance(value, JpegBatch) else value).clone()

    arrived, held, pooled, mixed = [], [], [], 0
    with open_batches(make_loader(stream, cfg, seed=5, use_cuda=False)) as batches:
        for batch in batches:
            query = batch["query_image"]
            mixed += isinstance(query, JpegBatch) and query.pixels is not None
            arrived.append(pixels(query))
            pooled += [slot for key, slot in batch.get(POOL_KEY, (0, []))[1] if key == "query_image"]
            if len(held) < 2:
                held.append(batch)
    assert len(arrived) == 15 and mixed > 2 and len(set(pooled)) < len(pooled)  # host rows in reused slots
    for batch, first in zip(held, arrived, strict=False):
        assert torch.equal(pixels(batch["query_image"]), first)
