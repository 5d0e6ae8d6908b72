"""Live training throughput (pipeline/throughput.py): the trainer's FLOP count of its own step, MFU against a
peak, and peak memory, in every log record, TensorBoard and the run's summary."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from test_train_support import (
    free_port,
    launch,
    make_tokenizer,
    make_vocabulary,
    tiny_artemis,
    wait_all,
    write_recipe,
    write_shards,
)

from coir.pipeline.models.flops import train_flops_per_sample
from coir.pipeline.throughput import known_peak_tflops, step_flops_per_sample


@pytest.mark.parametrize(
    ("name", "peak"),
    [
        ("NVIDIA H100 80GB HBM3", 989.0),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H200", 989.0),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA L40S", 362.0),
        ("NVIDIA L4", 121.0),
        ("Some Future Accelerator", None),
    ],
)
def test_the_peak_of_a_gpu_comes_from_its_cuda_name(name: str, peak: float | None) -> None:
    assert known_peak_tflops(name) == peak


def _artemis_and_batch(tmp_path: Path):
    from coir.pipeline.models.registry import build_model, model_config

    cfg = model_config(tiny_artemis(make_vocabulary(tmp_path)))
    torch.manual_seed(0)
    model = build_model(cfg).train()
    processor = model.processor()
    ids = processor.text(["the circle is red", "the star is blue"] * 2)
    batch = {"query_image": torch.rand(4, 3, 32, 32), "target_image": torch.rand(4, 3, 32, 32), **ids}
    return cfg, model, batch


def test_the_step_count_equals_a_full_backward_and_leaves_training_untouched(tmp_path: Path) -> None:
    """The trainer's count (autograd.grad) equals the benchmark's (loss.backward on a fresh copy), and
    the model comes out as it went in: no .grad, the same BatchNorm statistics, the same RNG stream."""
    from coir.pipeline.models.registry import build_model

    cfg, model, batch = _artemis_and_batch(tmp_path)
    buffers = {k: v.clone() for k, v in model.named_buffers() if v.is_floating_point()}
    assert buffers, "a model with BatchNorm statistics is the case to check"
    torch.manual_seed(1)
    counted = step_flops_per_sample(model, batch)
    after_count = torch.rand(3)
    torch.manual_seed(1)
    assert torch.equal(after_count, torch.rand(3))  # the count drew nothing from the global RNG
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, buffers[k]) for k, v in model.named_buffers() if k in buffers)

    torch.manual_seed(0)
    reference = train_flops_per_sample(build_model(cfg), batch)
    assert counted == pytest.approx(reference, rel=1e-9) and counted > 1e6


def test_every_record_and_the_summary_carry_flops_mfu_and_memory(tmp_path: Path) -> None:
    shards = write_shards(tmp_path / "shards", shards=2, per_shard=16)[0].parent
    recipe = write_recipe(
        tmp_path,
        shards,
        make_tokenizer(tmp_path / "tok"),
        **{"optim.total_steps": 4, "logging.every_steps": 2, "logging.peak_tflops": 0.002},
        **{"logging.tensorboard": True, "checkpoint.every_steps": 0},
    )
    ((code, out),) = wait_all(launch(recipe, 1, port=free_port()))
    assert code == 0, out[-3000:]
    records = [
        json.loads(line) for line in (tmp_path / "run" / "logs" / "train.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in records] == [2, 4]
    flops = records[0]["flops_per_sample"]
    assert flops > 1e6
    for record in records:
        assert record["flops_per_sample"] == flops  # counted once, on the first batch
        assert record["achieved_tflops"] == pytest.approx(flops * record["samples_per_s"] / 1e12)
        assert record["mfu"] == pytest.approx(record["achieved_tflops"] / 0.002)
        assert 0.05 < record["peak_host_memory_gib"] < 64
        assert "peak_device_memory_gib" not in record  # CPU: no device allocator to read
    summary = json.loads(out.strip().splitlines()[-1])["throughput"]
    assert summary["flops_per_sample"] == flops and summary["mfu"] > 0
    assert summary["peak_host_memory_gib"] >= records[-1]["peak_host_memory_gib"]
    assert "throughput: " in out and "MFU " in out

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run" / "logs" / "tensorboard"))
    events.Reload()
    assert {"train/mfu", "train/achieved_tflops", "train/peak_host_memory_gib"} <= set(
        events.Tags()["scalars"]
    )
    assert [e.step for e in events.Scalars("train/mfu")] == [2, 4]


def _train_throughput_benchmark():
    """benchmarks/train_throughput.py as a module (benchmarks/ is not a package)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "train_throughput.py"
    spec = importlib.util.spec_from_file_location("train_throughput_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("limit", range(600, 1171, 10))
def test_the_largest_batch_search_ends_near_the_largest_batch_that_fits(limit: int) -> None:
    """A device of 120 GiB where a batch takes 3 GiB + 0.1 GiB per sample, so the line allows 1170, but
    that runs out of memory above `limit` samples (fragmentation, workspaces the peak count misses): the
    search returns a batch that ran, within 5 % of the limit, never runs a batch above one that
    failed, and fits the line, in at most 9 probes."""
    bench = _train_throughput_benchmark()
    ran: list[int] = []
    failed_at: list[int] = []

    def run(batch_size: int):
        assert not failed_at or batch_size < min(failed_at), "a batch above one that ran out of memory"
        if batch_size > limit:
            failed_at.append(batch_size)
            raise bench.OutOfMemory(str(batch_size))
        ran.append(batch_size)
        return bench.Probe(batch_size, 3.0 + 0.1 * batch_size, 100.0)

    best, failed, fixed, per_sample = bench.largest_batch(run, 64, capacity_gib=120.0)
    assert best.batch_size == max(ran) and 0.95 * limit <= best.batch_size <= limit
    assert best.batch_size % 8 == 0
    assert failed == (min(failed_at) if failed_at else None)
    assert fixed == pytest.approx(3.0) and per_sample == pytest.approx(0.1)
    assert len(ran) + len(failed_at) <= 9
