"""Shard folders and broken shards as training meets them: an unfinished folder (no manifest) and a folder
whose shards differ from their manifest are refused naming the folder; a shard that yields nothing, too
large a share of bad reads, or a changed shard stop the stream with an error naming the shard; a truncated
shard trains on what it holds, its skips counted by shard and its error logged once with a count."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from test_train_data import StubProcessor, config
from test_train_support import REPO, child_env, make_tokenizer, train_command, write_recipe, write_shards

from coir.common.errors import ConfigError, DataFormatError
from coir.pipeline.config import resolve_shards
from coir.pipeline.data import StreamState, TrainStream, make_loader, open_batches


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A finished folder (manifest.json) of 2 shards x 24 triplets."""
    folder = tmp_path_factory.mktemp("built") / "triplets"
    write_shards(folder, shards=2, per_shard=24)
    return folder


def _copy(built: Path, to: Path) -> Path:
    shutil.copytree(built, to)
    return to


def _read(shards: list[str], workers: int = 0, **changes) -> tuple[list[dict], StreamState]:
    """Every batch of one epoch of one rank, through the loader and open_batches as the trainer reads."""
    cfg = config(num_workers=workers, **changes)
    state = StreamState.fresh(workers, 1)
    stream = TrainStream(shards, StubProcessor(), cfg, seed=3, rank=0, world_size=1, state=state)
    out = []
    with open_batches(make_loader(stream, cfg, seed=3, use_cuda=False)) as batches:
        for batch in batches:
            state.consumed(batch)
            out.append(batch)
    return out, state


def test_folder_without_manifest_is_refused_naming_it(built, tmp_path) -> None:
    unfinished = _copy(built, tmp_path / "unfinished")
    (unfinished / "manifest.json").unlink()  # as a build stopped before finalizing leaves it
    with pytest.raises(ConfigError, match="data.shards") as refused:
        resolve_shards([str(unfinished)])
    message = str(refused.value)
    assert f"{unfinished} has no manifest.json" in message and "holds 2 .tar files" in message
    # the deliberate way to read it as it is: list the shards
    assert f"data.shards=[{unfinished}/*.tar]" in message
    assert resolve_shards([f"{unfinished}/*.tar"]) == sorted(str(p) for p in unfinished.glob("*.tar"))


def test_shard_of_another_size_than_its_manifest_is_refused(built, tmp_path) -> None:
    folder = _copy(built, tmp_path / "cut")
    shard = folder / "triplets-000001.tar"
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])  # a copy that stopped half-way
    for given in (str(folder), str(shard)):  # the folder, or the shard itself: its manifest applies
        with pytest.raises(ConfigError, match="data.shards") as refused:
            resolve_shards([given])
        message = str(refused.value)
        assert f"{folder} does not match its manifest.json" in message
        assert f"triplets-000001.tar has {len(data) // 2} bytes, not {len(data)}" in message


def test_shard_changed_in_place_stops_the_stream_naming_it(built, tmp_path) -> None:
    folder = _copy(built, tmp_path / "changed")
    shard = folder / "triplets-000000.tar"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF  # same size, a changed byte in the end-of-archive padding: every sample still reads
    shard.write_bytes(bytes(data))
    shards = resolve_shards([str(folder)])  # the size matches
    with pytest.raises(DataFormatError, match="sha256 differs from its folder's manifest") as stopped:
        _read(shards, samples_per_epoch_per_worker=200, batch_size=8)
    assert str(shard) in str(stopped.value)
    # the untouched folder streams, its shards hashed as they are read
    batches, state = _read(resolve_shards([str(built)]), samples_per_epoch_per_worker=200, batch_size=8)
    assert len(batches) == 25 and state.bad_total == 0


def test_truncated_shard_trains_on_what_it_holds_counted_and_logged_once(built, tmp_path, caplog) -> None:
    data = (built / "triplets-000000.tar").read_bytes()
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="coir.data"):
        batches, state = _read([str(truncated)], samples_per_epoch_per_worker=96, batch_size=8)
    assert len(batches) == 12  # the whole epoch, from the first half of the shard, read again and again
    keys = {k for b in batches for k in b["_keys"]}
    assert 5 <= len(keys) < 24 and all(int(k.split("_")[1]) < 12 for k in keys)  # the samples it holds
    skips = state.skips_by_shard()
    assert (
        list(skips) == [str(truncated)]
        and skips[str(truncated)] >= 8
        and state.bad_total == sum(skips.values())
    )
    unreadable = [r.getMessage() for r in caplog.records if "unreadable shard data" in r.getMessage()]
    assert len(unreadable) == 2, unreadable  # logged once, then once with its count at the end of the epoch
    assert str(truncated) in unreadable[0] and f"{skips[str(truncated)]} times this epoch" in unreadable[1]


@pytest.mark.parametrize("workers", [0, 2])
def test_too_large_a_share_of_bad_samples_stops_naming_the_shard(tmp_path, workers: int) -> None:
    half_bad = tuple((0, i) for i in range(0, 24, 2))  # 12 of 24 JPEGs broken
    write_shards(tmp_path / "bad", shards=1, per_shard=24, corrupt=half_bad)
    shards = resolve_shards([str(tmp_path / "bad")])
    with pytest.raises(DataFormatError, match=r"more than data\.max_bad_share=0\.2") as stopped:
        _read(shards, workers, samples_per_epoch_per_worker=400, batch_size=4)
    assert shards[0] in str(stopped.value)
    batches, state = _read(shards, workers, samples_per_epoch_per_worker=160, batch_size=4, max_bad_share=1.0)
    assert len(batches) == 40 * max(1, workers) and state.bad_total > 40


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> Path:
    return make_tokenizer(tmp_path_factory.mktemp("tok"))


def _train(tmp: Path, shard: Path, tokenizer: Path, timeout: float, **overrides: object):
    """`coir train` (tiny CASE, one worker) on `shard` alone, bounded by `timeout` seconds."""
    recipe = write_recipe(tmp, shard, tokenizer, **{"data.shards": [str(shard)], **overrides})
    return subprocess.run(
        train_command(recipe), env=child_env(), cwd=str(REPO), capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("content", ["random", "empty"])
def test_broken_only_shard_ends_the_job_naming_it(tmp_path, tokenizer, content: str) -> None:
    # it used to loop forever: every read failed, was skipped unlogged-by-count, and resampled again
    shard = tmp_path / "broken.tar"
    shard.write_bytes(os.urandom(64 * 1024) if content == "random" else b"")
    try:
        done = _train(tmp_path, shard, tokenizer, timeout=120)
    except subprocess.TimeoutExpired as hung:
        pytest.fail(f"training on a broken shard did not end: {str(hung.stderr)[-2000:]}")
    assert done.returncode == 2, done.stderr[-3000:]
    why = (
        "yields no sample: TarReadError: bad header checksum at byte 0"
        if content == "random"
        else "holds no sample"
    )
    assert f"coir: error: {shard}: {why}" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stdout) + len(done.stderr) < 20_000


def test_truncated_only_shard_trains_and_the_summary_counts_its_skips(tmp_path, built, tokenizer) -> None:
    data = (built / "triplets-000000.tar").read_bytes()
    shard = tmp_path / "truncated.tar"
    shard.write_bytes(data[: len(data) // 2])
    # 6 batches of 8 per epoch; step 7 is in the second epoch, so the first one ends and says its counts
    done = _train(
        tmp_path, shard, tokenizer, timeout=300, **{"optim.total_steps": 7, "checkpoint.every_steps": 0}
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["status"] == "completed" and summary["step"] == 7
    assert list(summary["skipped_by_shard"]) == [str(shard)]
    assert summary["skipped_by_shard"][str(shard)] == summary["skipped_samples"] >= 4
    output = done.stdout + done.stderr
    assert f"skipped samples or unreadable shard data by shard: {shard}:" in output
    first_epoch = [
        line for line in output.splitlines() if "unreadable shard data" in line and "worker 0" in line
    ]
    assert len(first_epoch) <= 4 and any("times this epoch" in line for line in first_epoch), first_epoch


def test_inspect_reports_where_a_truncated_shard_breaks_and_keeps_what_it_read(built, tmp_path) -> None:
    from coir.datasets.shards.inspect_cli import read_samples

    folder = _copy(built, tmp_path / "inspected")
    first = sorted(folder.glob("*.tar"))[0]
    data = first.read_bytes()
    first.write_bytes(data[: len(data) // 2 + 100])  # cut inside a member
    samples, unreadable = read_samples(folder, 100)
    assert len(unreadable) == 1 and str(first) in unreadable[0] and "TarReadError" in unreadable[0]
    assert "at byte" in unreadable[0]
    keys = [s["__key__"] for s in samples]
    assert 0 < sum(key.startswith("s00_") for key in keys) < 24  # the first shard's samples before the cut
    assert sum(key.startswith("s01_") for key in keys) == 24  # the next shard is read whole
    whole = [s for s in samples if s["__key__"].startswith("s01_")]
    assert all({"query.jpg", "target.jpg", "txt"} <= set(s) for s in whole)
