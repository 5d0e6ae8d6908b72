"""The training sample stream: WebDataset shards -> decoded, transformed, tokenised batches.

Layout of the stream. The shard list is split by node (rank r of W takes shards[r::W], the slicing
of wds.split_by_node, so ranks read disjoint shards whenever there are at least W shards) and then
by DataLoader worker the same way. Each worker resamples shards from its part (wds.ResampledShards),
expands them into samples (wds.tarfile_to_samples with a handler that logs and continues), shuffles
through a buffer, decodes the JPEGs (pipeline/decode.py: simplejpeg, straight to uint8 when the image is
already at the model's input size), augments them when data.augment.enabled (pipeline/augment.py:
crop, flip with left/right swapped in the text, RandAugment; on the uint8 PIL images), applies the host
part of the model's Processor (geometry to uint8, tokenisation) and yields whole batches whose images
are uint8 [B, 3, H, W]: the training step turns them into normalised floats on the device, batched
(models/pixels.py). An epoch is a
fixed number of batches per worker (data.samples_per_epoch_per_worker // data.batch_size); a new
epoch rebuilds the workers.
With data.inputs=features the samples hold the model's frozen-part features (`coir data features`)
instead of JPEGs: they are read as arrays, no image is decoded, and batches carry query_feature /
target_feature in place of query_image / target_image; the rest of the stream is the same.

Exact resume. Every random choice of a worker is seeded from (seed, epoch, rank, worker): the shard
order of ResampledShards, the shuffle buffer's RNG and, per raw sample (by its index in the raw
stream), its augmentation. The raw stream (samples before decoding) of a worker in an epoch is
therefore a pure function of those four numbers. Each batch carries the index of the worker that
made it and how many raw samples that worker had consumed up to it; the
training loop keeps these for the batches it actually used (prefetched ones do not count), and the
checkpoint stores them as StreamState. On resume the same per-worker streams are rebuilt and each
worker drops the raw samples it had already consumed *before* decoding them (cheap: only tar bytes
are read), so bad samples skipped during decoding are accounted for exactly. The DataLoader hands
batches out round-robin starting at worker 0; after B consumed batches the next one belonged to
worker B mod n, so on resume physical worker p plays logical worker (p + B) mod n and the
interleaving continues unchanged. The DataLoader gets its own torch.Generator so that building it
does not draw from the global RNG, whose state is restored from the checkpoint. The result: after
resume the sample stream is exactly the continuation of the interrupted one (same world size and
number of workers required; otherwise the run continues with a fresh epoch and says so).

Bad samples (corrupt JPEG, missing field, unreadable tar member) are logged with key and shard,
counted per worker (the count travels with each batch into the train log) and skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from coir.common import fields
from coir.common.errors import DataFormatError
from coir.pipeline.augment import TripletAugment
from coir.pipeline.config import DataConfig
from coir.pipeline.decode import PixelDecoder
from coir.pipeline.features import array_from_npy
from coir.pipeline.models.pixels import stack_images

log = logging.getLogger("coir.data")

META_PREFIX = "_"  # batch keys that describe the batch rather than feed the model
MAX_BAD_IN_A_ROW = 1000  # beyond this the shards are wrong, not a few samples: stop with an error


def stream_seed(*parts: int) -> int:
    digest = hashlib.sha256("-".join(str(p) for p in parts).encode()).hexdigest()
    return int(digest[:15], 16)


def split_shards(shards: list[str], index: int, count: int) -> list[str]:
    """Part `index` of `count` (the slicing of wds.split_by_node); everything when too few shards."""
    return shards[index::count] if len(shards) >= count else list(shards)


@dataclass
class StreamState:
    """Where a rank's stream stands; saved in every checkpoint (one per rank)."""

    epoch: int = 0
    batches: int = 0  # batches of this epoch the training loop consumed
    raw: list[int] = field(default_factory=list)  # per logical worker: raw samples consumed
    bad: list[int] = field(default_factory=list)  # per logical worker: bad samples skipped this epoch
    bad_before: int = 0  # bad samples skipped in earlier epochs
    num_workers: int = 1
    world_size: int = 1

    @property
    def bad_total(self) -> int:
        return self.bad_before + sum(self.bad)

    def consumed(self, batch: dict[str, Any]) -> None:
        worker = int(batch["_worker"])
        self.raw[worker] = int(batch["_raw"])
        self.bad[worker] = int(batch["_bad"])
        self.batches += 1

    def next_epoch(self) -> None:
        self.bad_before = self.bad_total
        self.epoch += 1
        self.batches = 0
        self.raw = [0] * self.num_workers
        self.bad = [0] * self.num_workers

    @classmethod
    def fresh(cls, num_workers: int, world_size: int) -> StreamState:
        workers = max(1, num_workers)
        return cls(raw=[0] * workers, bad=[0] * workers, num_workers=workers, world_size=world_size)


class ImageDecoder:
    """raw triplet sample -> (query uint8 tensor, target uint8 tensor, text); raises on anything bad.
    Bytes through pipeline/decode.py (data.image_mode, data.draft_size) and the host part of the
    model's Processor; float conversion and normalisation happen on the device (models/pixels.py)."""

    fields = (fields.QUERY_IMAGE, fields.TARGET_IMAGE)
    keys = ("query_image", "target_image")  # their batch keys

    def __init__(self, processor: Any, config: DataConfig) -> None:
        self.processor = processor
        self.pixels = PixelDecoder(processor, config.image_mode, config.draft_size)
        aug = config.augment
        # crops are resized straight to the model's input size (its Processor's resize is then a no-op)
        self.augment = TripletAugment(aug, getattr(processor, "image_size", None)) if aug.enabled else None

    def item(self, data: bytes) -> torch.Tensor:
        return self.pixels.tensor(data)

    def __call__(
        self, sample: dict[str, Any], rng: random.Random | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, str]:
        """With augmentation on, `rng` (one per sample, see TrainStream) makes every random choice."""
        for key in (*self.fields, fields.TEXT):
            if key not in sample:
                raise KeyError(f"missing field {key!r}")
        text = sample[fields.TEXT].decode("utf-8").strip()
        if self.augment is None or rng is None:
            query, target = (self.item(sample[key]) for key in self.fields)
            return query, target, text
        ref, tgt, text = self.augment(*(self.pixels.pil(sample[key]) for key in self.fields), text, rng)
        return self.processor.image(ref), self.processor.image(tgt), text


class FeatureDecoder(ImageDecoder):
    """The same for feature samples (`coir data features`): .npy arrays, kept in their stored dtype
    (the model casts them on the device)."""

    fields = (fields.QUERY_FEATURE, fields.TARGET_FEATURE)
    keys = ("query_feature", "target_feature")

    def __init__(self, processor: Any, config: DataConfig) -> None:
        super().__init__(processor, config)
        self.augment = None  # features are fixed outputs of the frozen part (check_values refuses both)

    def item(self, data: bytes) -> torch.Tensor:
        return torch.from_numpy(array_from_npy(data))


def decoder_for(processor: Any, config: DataConfig) -> ImageDecoder:
    """The decoder of what data.inputs says the shards hold."""
    return (FeatureDecoder if config.inputs == "features" else ImageDecoder)(processor, config)


class TrainStream(IterableDataset):
    """One rank's batches for one epoch, resumable from a StreamState (see the module docstring)."""

    def __init__(
        self,
        shards: list[str],
        processor: Any,
        config: DataConfig,
        seed: int,
        rank: int,
        world_size: int,
        state: StreamState,
    ) -> None:
        super().__init__()
        self.shards = split_shards(shards, rank, world_size)
        self.processor = processor
        self.config = config
        self.seed = seed
        self.rank = rank
        self.state = state
        self.batches_per_worker = config.samples_per_epoch_per_worker // config.batch_size
        self._read_errors = 0
        self._skipping = False

    def _on_read_error(self, error: Exception) -> bool:
        if not self._skipping:
            self._read_errors += 1
            log.warning("rank %d: skipped unreadable shard data: %r", self.rank, error)
        return True  # continue with the next sample / shard

    def worker_shards(self, logical: int, workers: int) -> list[str]:
        return split_shards(self.shards, logical, workers)

    def __iter__(self):
        import webdataset as wds

        info = get_worker_info()
        physical, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        state = self.state
        logical = (physical + state.batches) % workers
        done = state.batches // workers + (1 if logical < state.batches % workers else 0)
        remaining = self.batches_per_worker - done
        if remaining <= 0:
            return
        seed = stream_seed(self.seed, state.epoch, self.rank, logical)
        urls = self.worker_shards(logical, workers)
        source = wds.ResampledShards(urls, seed=seed, worker_seed=lambda: 0, deterministic=True)
        samples = wds.tarfile_to_samples(handler=self._on_read_error)(iter(source))
        shuffled = wds.shuffle(
            self.config.shuffle_buffer, self.config.shuffle_initial, rng=random.Random(seed + 1)
        )(samples)
        decode = decoder_for(self.processor, self.config)
        skip = state.raw[logical] if logical < len(state.raw) else 0
        bad = state.bad[logical] if logical < len(state.bad) else 0
        self._read_errors = 0
        self._skipping = skip > 0
        rows: list[tuple[torch.Tensor, torch.Tensor, str]] = []
        keys: list[str] = []
        shard_names: list[str] = []
        bad_run = 0
        for raw_index, sample in enumerate(shuffled):
            if raw_index < skip:
                continue
            self._skipping = False
            try:
                # augmentation seeded per raw sample: the same on resume, different each epoch
                rng = None
                if decode.augment is not None:
                    rng = random.Random(stream_seed(self.seed, state.epoch, self.rank, logical, raw_index))
                rows.append(decode(sample, rng))
                bad_run = 0
            except Exception as error:  # a bad sample must not stop training
                bad += 1
                bad_run += 1
                if bad_run > MAX_BAD_IN_A_ROW:
                    raise DataFormatError(
                        str(sample.get("__url__")), f"{bad_run} bad samples in a row; last: {error!r}"
                    ) from error
                log.warning(
                    "rank %d worker %d: skipped bad sample %s in %s: %r",
                    self.rank,
                    logical,
                    sample.get("__key__"),
                    sample.get("__url__"),
                    error,
                )
                continue
            keys.append(str(sample.get("__key__")))
            shard_names.append(str(sample.get("__url__")))
            if len(rows) < self.config.batch_size:
                continue
            batch = self._collate(rows, decode.keys)
            batch.update(
                _worker=logical,
                _raw=raw_index + 1,
                _bad=bad + self._read_errors,
                _keys=keys,
                _shards=shard_names,
            )
            yield batch
            rows, keys, shard_names = [], [], []
            remaining -= 1
            if remaining == 0:
                return

    def _collate(
        self, rows: list[tuple[torch.Tensor, torch.Tensor, str]], keys: tuple[str, str]
    ) -> dict[str, Any]:
        queries, targets, texts = zip(*rows, strict=True)
        return {
            keys[0]: stack_images(queries) if queries[0].dtype == torch.uint8 else torch.stack(queries),
            keys[1]: stack_images(targets) if targets[0].dtype == torch.uint8 else torch.stack(targets),
            **self.processor.text(list(texts)),  # the model's text fields
        }


def _worker_init(_: int) -> None:
    # The main process handles SIGTERM/SIGUSR2 (checkpoint, then exit); workers must survive them
    # until the main process is done, and then they are shut down by the DataLoader.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    torch.set_num_threads(1)


def make_loader(stream: TrainStream, config: DataConfig, seed: int, use_cuda: bool) -> DataLoader:
    generator = torch.Generator()
    generator.manual_seed(stream_seed(seed, stream.state.epoch, stream.rank))
    workers = config.num_workers
    return DataLoader(
        stream,
        batch_size=None,
        num_workers=workers,
        pin_memory=config.pin_memory and use_cuda,
        worker_init_fn=_worker_init if workers > 0 else None,
        prefetch_factor=config.prefetch_factor if workers > 0 else None,
        persistent_workers=False,
        generator=generator,
    )


@contextlib.contextmanager
def open_batches(loader: DataLoader) -> Iterator[Iterator[dict[str, Any]]]:
    """iter(loader), with its worker processes shut down however the block is left.

    Workers ignore SIGTERM (see _worker_init), so workers left behind by an exception would block
    the interpreter's exit, where multiprocessing terminates and then joins its children.
    """
    batches = iter(loader)
    try:
        yield batches
    finally:
        shutdown = getattr(batches, "_shutdown_workers", None)  # multi-process iterators only
        if shutdown is not None:
            shutdown()


def split_batch(batch: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Model inputs and the batch's metadata (keys starting with '_')."""
    inputs = {k: v for k, v in batch.items() if not k.startswith(META_PREFIX)}
    meta = {k: v for k, v in batch.items() if k.startswith(META_PREFIX)}
    return inputs, meta
