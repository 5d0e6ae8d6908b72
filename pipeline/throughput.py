"""Live training throughput: FLOPs per sample of the real training step, the device's peak, MFU, memory.

The trainer counts the FLOPs of one forward + backward of its own model on its first batch (torch's
FlopCounterMode: matmuls, convolutions, attention; not the optimizer), then reports in every log record
    achieved_tflops = flops_per_sample x samples/s / world / 1e12     (per device)
    mfu             = achieved_tflops / peak_tflops
with peak_tflops from `logging.peak_tflops`, else the detected GPU's dense bf16 peak (PEAK_BF16_TFLOPS),
else none (CPU: MFU is not reported), and the peak memory since the start (device: CUDA's allocator;
host: the process's resident set).
"""

from __future__ import annotations

import resource
import sys
from typing import Any

import torch

# Dense (no sparsity) bf16 tensor-core peak per GPU in TFLOP/s, from the vendors' data sheets; the
# first substring of the CUDA device name that matches wins, so the longer names come first.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 NVL", 835.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),  # SXM
    ("H200", 989.0),
    ("H800", 989.0),
    ("GH200", 989.0),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
    ("A6000", 155.0),
    ("A10G", 70.0),
    ("A10", 125.0),
    ("RTX 4090", 165.0),
    ("RTX 3090", 71.0),
)


def known_peak_tflops(device_name: str) -> float | None:
    """The dense bf16 peak of a GPU by its CUDA name (e.g. "NVIDIA H100 80GB HBM3"); None if unknown."""
    for fragment, peak in PEAK_BF16_TFLOPS:
        if fragment in device_name:
            return peak
    return None


def detect_peak_tflops(device: torch.device | str) -> float | None:
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    return known_peak_tflops(torch.cuda.get_device_name(device))


def step_flops_per_sample(module: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> float:
    """FLOPs of the training step's forward (module(inputs)["loss"]) and backward, per sample.

    The backward goes through torch.autograd.grad with the trainable parameters as inputs, so no .grad
    is written and no gradient hook (DeepSpeed's reduction hooks run after accumulation) fires: the
    optimizer's state is untouched. Every rank calls it together (the loss may gather across ranks).
    """
    from torch.utils.flop_counter import FlopCounterMode

    samples = next(iter(inputs.values())).shape[0]
    trainable = [p for p in module.parameters() if p.requires_grad]
    # the count must not change training: its dropout draws come from a forked RNG and the buffers
    # a training forward updates (BatchNorm statistics) are put back, so resumed runs stay exact
    buffers = {name: b.detach().clone() for name, b in module.named_buffers()}
    devices = [p.device for p in module.parameters() if p.device.type == "cuda"][:1]
    with torch.random.fork_rng(devices=devices), FlopCounterMode(display=False) as counter:
        loss = module(inputs)["loss"]
        if trainable and loss.requires_grad:
            torch.autograd.grad(loss, trainable, allow_unused=True)
    with torch.no_grad():
        for name, b in module.named_buffers():
            b.copy_(buffers[name])
    return counter.get_total_flops() / max(1, samples)


def peak_host_memory_gib() -> float:
    """The process's peak resident set (Linux: ru_maxrss in KiB; macOS: bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**30 if sys.platform == "darwin" else 2**20)


def peak_device_memory_gib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**30


def throughput_fields(
    samples_per_s: float, world: int, flops_per_sample: float | None, peak_tflops: float | None
) -> dict[str, Any]:
    """The FLOP-derived fields of a log record (samples_per_s is global, over `world` devices)."""
    if not flops_per_sample:
        return {}
    achieved = flops_per_sample * samples_per_s / max(1, world) / 1e12
    fields: dict[str, Any] = {"flops_per_sample": flops_per_sample, "achieved_tflops": achieved}
    if peak_tflops:
        fields["mfu"] = achieved / peak_tflops
    return fields


def format_throughput(record: dict[str, Any]) -> str:
    """One line for the log: samples/s, data wait, TFLOP/s per device, MFU, peak memory."""
    parts = [f"{record['samples_per_s']:.1f} samples/s", f"data wait {100 * record['data_wait_share']:.0f}%"]
    if "achieved_tflops" in record:
        parts.append(f"{record['achieved_tflops']:.3g} TFLOP/s per device")
    if "mfu" in record:
        parts.append(f"MFU {100 * record['mfu']:.1f}%")
    if "peak_device_memory_gib" in record:
        parts.append(f"peak device memory {record['peak_device_memory_gib']:.2f} GiB")
    parts.append(f"peak host memory {record['peak_host_memory_gib']:.2f} GiB")
    return ", ".join(parts)
