"""Batch memory that DataLoader workers refill instead of allocating for every batch.

A worker's batch reaches the training process in shared memory (torch passes the file descriptor).
Shared memory touched for the first time costs a page fault and a zeroed page per 4 KiB: on the
development machine 11-12 ms for a batch of 32 images at 384 px (~0.36 ms an image, two thirds of
decoding the JPEG), against 0.2 ms to write memory already mapped (benchmarks/loader.py measures the
effect: `loader, 1 worker` against `loader, 1 worker, unpooled`). So a worker keeps its batch buffers and
writes the next batch into one the training process has let go of:

- the release board (`release_board`): one flag per worker and buffer slot, in shared memory, made by
  the training process for the workers `open_batches` starts (a loader iterated directly has none, and
  its batches get new memory as before); 1 while the slot's batch may still be read, 0 when the slot
  is free. The worker sets a flag when it takes the slot, the training process clears it.
- `BufferPool` (in a worker): `take(shape)` gives a free slot of that size (a new one while the worker
  has unused slot numbers, else a one-off buffer nobody reuses: the worker never waits); `give_back`
  frees a slot the worker did not ship after all. Without workers (data.num_workers=0) the stream runs
  in the training process and the pool needs no board: a slot is free when nothing but the pool refers
  to its memory (the storage's use count). Private memory is reused by the allocator too, but only in
  part: the in-process loader took 26,000-71,000 page faults per 1,024 images at 384 px (getrusage
  around benchmarks/loader.py's measure), ~110,000 when nothing is reused.
- `Releaser` (in the training process): holds a weak reference to the storage of each received batch's
  pooled images and clears their flags once nothing refers to that memory any more (a view, a numpy
  array or a pinned copy in flight keeps it), checked before each next batch. A batch the pin-memory
  thread copied is tracked through its copy, which dies no earlier than the shared memory it was
  copied from: a slot may be freed late, never early.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils.data import get_worker_info

from coir.pipeline.models.pixels import worker_uint8

POOL_KEY = "_pool"  # batch key: (worker id, [(batch key, slot), ...]) of the pooled images
FREE, TAKEN = 0, 1


def slots_per_worker(image_keys: int, prefetch_factor: int) -> int:
    """Buffer slots a worker may keep: one per image key for each batch that can be in flight at once
    (prefetched, being filled, held by the pin-memory thread and by the training step, and the one the
    training step dropped but whose release is checked at the next batch)."""
    return image_keys * (prefetch_factor + 4)


def release_board(workers: int, slots: int) -> torch.Tensor:
    """The flags of `workers` x `slots` buffers, all free, in shared memory (made before the workers)."""
    return torch.zeros(workers, slots, dtype=torch.uint8).share_memory_()


class BufferPool:
    """One DataLoader worker's reusable shared-memory buffers (see the module docstring)."""

    def __init__(self, flags: np.ndarray | None, worker: int | None = None, slots: int = 0) -> None:
        # a worker's row of the board (shared memory, written in place); None in the training process
        self.flags = flags
        self.worker = worker
        self.slots = len(flags) if flags is not None else slots
        self.buffers: dict[int, torch.Tensor] = {}  # slot -> flat uint8 buffer
        self.fresh = 0  # buffers allocated (pooled or one-off): what reuse avoids
        self._unused = _use_count(torch.empty(1, dtype=torch.uint8))  # a buffer nothing else refers to

    @classmethod
    def for_stream(cls, board: torch.Tensor | None, slots: int) -> BufferPool:
        """The pool of the process that runs a stream: a DataLoader worker's (its row of `board`; without
        a board, one that keeps nothing: every buffer a one-off) or, without workers, the training
        process's own (`slots` buffers)."""
        info = get_worker_info()
        if info is None:
            return cls(None, slots=slots)
        return cls(None) if board is None else cls(board[info.id].numpy(), info.id)

    def _free(self, slot: int) -> bool:
        if self.flags is not None:
            return bool(self.flags[slot] == FREE)
        return _use_count(self.buffers[slot]) <= self._unused

    def take(self, *shape: int) -> tuple[torch.Tensor, int | None]:
        """An uninitialised uint8 tensor of `shape` (in shared memory in a worker) and its slot (None:
        a one-off)."""
        size = math.prod(shape)
        free = [slot for slot in self.buffers if self._free(slot)]
        slot = next((s for s in free if self.buffers[s].numel() == size), None)
        if slot is None:  # a new buffer: in an unused slot, else in place of a free one of another size
            unused = [s for s in range(self.slots) if s not in self.buffers]
            slot = unused[0] if unused else (free[0] if free else None)
            buffer = worker_uint8(size)
            self.fresh += 1
            if slot is None:
                return buffer.view(shape), None
            self.buffers[slot] = buffer
        if self.flags is not None:
            self.flags[slot] = TAKEN
        return self.buffers[slot].view(shape), slot

    def give_back(self, slot: int | None) -> None:
        """Free a slot whose buffer did not leave the worker (in the training process, a slot is free
        as soon as it is unused)."""
        if slot is not None and self.flags is not None:
            self.flags[slot] = FREE


def _use_count(buffer: torch.Tensor) -> int:
    """References to `buffer`'s storage (tensors, views, the storage wrapper made here: measured for a
    buffer nothing else refers to when the pool is made, so the wrapper's own count is accounted)."""
    return torch._C._storage_Use_Count(buffer.untyped_storage()._cdata)


def _tensors(value: Any) -> list[torch.Tensor]:
    """The tensors a batch value holds: itself, or the tensor fields of a dataclass (a JpegBatch)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if dataclasses.is_dataclass(value):
        fields = (getattr(value, f.name) for f in dataclasses.fields(value))
        return [field for field in fields if isinstance(field, torch.Tensor)]
    return []


def shares_memory(value: Any, buffer: torch.Tensor) -> bool:
    """Whether a batch value holds (a view of) `buffer`'s memory."""
    start = buffer.untyped_storage().data_ptr()
    return any(t.untyped_storage().data_ptr() == start for t in _tensors(value))


class Releaser:
    """The training process's side: frees the slots of received batches once their memory is unused."""

    def __init__(self, board: torch.Tensor) -> None:
        self.flags = board.numpy()
        self.held: list[tuple[int, int, list[StorageWeakRef]]] = []  # worker, slot, storages

    def track(self, batch: dict[str, Any]) -> None:
        pooled = batch.get(POOL_KEY)
        if pooled is None:
            return
        worker, slots = pooled
        for key, slot in slots:
            refs = [StorageWeakRef(t.untyped_storage()) for t in _tensors(batch[key])]
            self.held.append((worker, slot, refs))

    def sweep(self) -> None:
        """Free the slots whose every storage is gone."""
        still = []
        for worker, slot, refs in self.held:
            if all(ref.expired() for ref in refs):
                self.flags[worker, slot] = FREE
            else:
                still.append((worker, slot, refs))
        self.held = still
