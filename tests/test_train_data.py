"""The training sample stream: bad samples skipped and counted, disjoint shards per rank, exact resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_train_support import write_shards

from coir.pipeline.config import DataConfig
from coir.pipeline.data import StreamState, TrainStream, make_loader, split_shards


class StubProcessor:
    """Picklable stand-in for a model's Processor (keeps these tests free of model building)."""

    image_size = 8

    def image(self, image) -> torch.Tensor:
        return torch.from_numpy(np.array(image.resize((8, 8)), dtype=np.uint8)).permute(2, 0, 1)

    def passes_through(self, width: int, height: int) -> bool:
        return width == height == 8

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        return images.float() / 255

    def text(self, texts: list[str]) -> dict[str, torch.Tensor]:
        ids = torch.tensor(
            [[len(word) for word in t.split()][:6] + [0] * (6 - len(t.split()[:6])) for t in texts]
        )
        return {"input_ids": ids, "attention_mask": (ids > 0).long()}


def config(**changes) -> DataConfig:
    base = dict(
        batch_size=4, num_workers=2, shuffle_buffer=8, shuffle_initial=4, samples_per_epoch_per_worker=12
    )
    base.update(changes)
    return DataConfig(shards=[], **base)


def batches(shards, cfg, state, rank=0, world=1, limit=None):
    stream = TrainStream(
        [str(s) for s in shards], StubProcessor(), cfg, seed=3, rank=rank, world_size=world, state=state
    )
    out = []
    for batch in make_loader(stream, cfg, seed=3, use_cuda=False):
        out.append(batch)
        state.consumed(batch)
        if limit is not None and len(out) == limit:
            break
    return out


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> list[Path]:
    return write_shards(tmp_path_factory.mktemp("shards"), shards=4, per_shard=10, corrupt=((0, 2), (1, 5)))


def test_bad_samples_are_skipped_and_counted(shards) -> None:
    cfg = config(num_workers=0, samples_per_epoch_per_worker=200, batch_size=8)
    state = StreamState.fresh(0, 1)
    out = batches(shards[:2], cfg, state)
    keys = [k for b in out for k in b["_keys"]]
    assert len(out) == 25 and all(b["query_image"].shape == (8, 3, 8, 8) for b in out)
    assert "s00_0002" not in keys and "s01_0005" not in keys  # the corrupt ones never reach a batch
    # 200 good samples drawn by resampling from 20 samples, 2 of them corrupt: some were hit and counted
    assert state.bad_total > 0 and state.bad_total == out[-1]["_bad"]
    assert state.raw[0] == len(keys) + state.bad_total


def test_missing_field_is_skipped(tmp_path: Path) -> None:
    import webdataset as wds

    path = tmp_path / "broken-000000.tar"
    good = write_shards(tmp_path / "good", shards=1, per_shard=3)[0]
    samples = list(wds.WebDataset(str(good), shardshuffle=False))
    with wds.TarWriter(str(path)) as sink:
        for i, sample in enumerate(samples):
            record = {k: v for k, v in sample.items() if not k.startswith("__") or k == "__key__"}
            if i == 1:
                del record["txt"]
            sink.write(record)
    state = StreamState.fresh(0, 1)
    out = batches([path], config(num_workers=0, batch_size=2, samples_per_epoch_per_worker=4), state)
    assert len(out) == 2 and state.bad_total >= 1
    assert all("s00_0001" not in b["_keys"] for b in out)


def test_ranks_and_workers_read_disjoint_shards(shards) -> None:
    names = [str(s) for s in shards]
    assert split_shards(names, 0, 2) == names[0::2] and split_shards(names, 1, 2) == names[1::2]
    seen = {}
    for rank in (0, 1):
        state = StreamState.fresh(2, 2)
        seen[rank] = {s for b in batches(shards, config(), state, rank=rank, world=2) for s in b["_shards"]}
    assert seen[0] and seen[1] and not seen[0] & seen[1]
    assert seen[0] <= set(names[0::2]) and seen[1] <= set(names[1::2])


@pytest.mark.parametrize("stop_after", [3, 4])
def test_resumed_stream_is_the_exact_continuation(shards, stop_after: int) -> None:
    cfg = config()
    full_state = StreamState.fresh(2, 1)
    full = batches(shards, cfg, full_state)
    assert len(full) == 6  # 2 workers x 12 samples / 4
    # an interrupted epoch: consume some batches, keep only the state (as a checkpoint would)
    state = StreamState.fresh(2, 1)
    batches(shards, cfg, state, limit=stop_after)
    resumed = StreamState(**{**state.__dict__, "raw": list(state.raw), "bad": list(state.bad)})
    rest = batches(shards, cfg, resumed)
    keys = [b["_keys"] for b in full]
    assert [b["_keys"] for b in rest] == keys[stop_after:]
    assert torch.equal(rest[0]["query_image"], full[stop_after]["query_image"])
    assert resumed.raw == full_state.raw and resumed.bad_total == full_state.bad_total


def test_epochs_differ_and_repeat_with_the_seed(shards) -> None:
    cfg = config(num_workers=1)
    first = StreamState.fresh(1, 1)
    epoch0 = [b["_keys"] for b in batches(shards, cfg, first)]
    first.next_epoch()
    epoch1 = [b["_keys"] for b in batches(shards, cfg, first)]
    again = [b["_keys"] for b in batches(shards, cfg, StreamState.fresh(1, 1))]
    assert epoch0 == again and epoch0 != epoch1


def test_open_batches_shuts_the_workers_down_when_training_fails(shards) -> None:
    # workers ignore SIGTERM (the main process owns preemption), so workers left behind by an
    # exception would hang the interpreter's exit, where multiprocessing terminates and joins them
    from coir.pipeline.data import open_batches

    cfg = config(num_workers=2, samples_per_epoch_per_worker=1000)
    state = StreamState.fresh(2, 1)
    stream = TrainStream([str(s) for s in shards], StubProcessor(), cfg, 3, 0, 1, state)
    loader = make_loader(stream, cfg, seed=3, use_cuda=False)
    with pytest.raises(RuntimeError, match="step failed"), open_batches(loader) as loader_batches:
        next(loader_batches)
        workers = list(loader_batches.batches._workers)
        assert len(workers) == 2 and all(w.is_alive() for w in workers)
        raise RuntimeError("step failed")
    assert not any(w.is_alive() for w in workers)
