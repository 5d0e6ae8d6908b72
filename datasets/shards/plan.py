"""Deterministic plans: which samples go to which shard, and which shards to which task.

Shard i holds samples [i * shard_size, (i + 1) * shard_size) of the build's sample order, so the
plan depends only on the inputs and the shard size, never on how many processes or tasks run it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def num_shards_for(num_samples: int, shard_size: int) -> int:
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    return (num_samples + shard_size - 1) // shard_size


def shard_samples(samples: Sequence[T], shard_size: int) -> list[Sequence[T]]:
    """The samples of each shard, in order."""
    return [
        samples[i * shard_size : (i + 1) * shard_size]
        for i in range(num_shards_for(len(samples), shard_size))
    ]


def split_ranges(num_shards: int, num_tasks: int) -> list[range]:
    """Contiguous shard-index ranges, one per task, sizes differing by at most one.

    split_ranges(10, 3) -> [range(0, 4), range(4, 7), range(7, 10)]. Tasks beyond the number of
    shards get empty ranges. Contiguous ranges keep neighbouring samples (which share images) in
    one task, which encodes each of its images once.
    """
    if num_tasks < 1:
        raise ValueError(f"num_tasks must be >= 1, got {num_tasks}")
    base, extra = divmod(num_shards, num_tasks)
    ranges, start = [], 0
    for task in range(num_tasks):
        stop = start + base + (1 if task < extra else 0)
        ranges.append(range(start, stop))
        start = stop
    return ranges


def task_range(num_shards: int, task_index: int, num_tasks: int) -> range:
    if not 0 <= task_index < num_tasks:
        raise ValueError(f"task_index must be in [0, {num_tasks}), got {task_index}")
    return split_ranges(num_shards, num_tasks)[task_index]


def shard_name(prefix: str, index: int) -> str:
    return f"{prefix}-{index:06d}.tar"
