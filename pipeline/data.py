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
A model that trains on single images (`training_samples = "images"`, Pic2Word) reads gallery-format
shards instead (GALLERY_IMAGE + META per sample: a coir gallery/ folder, or any WebDataset shards with a
`jpg` per sample, such as img2dataset's output), and its batches hold only `image` [B, 3, H, W];
`check_samples` refuses, before training, shard folders whose manifest says they hold the other kind.
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

Bad samples (corrupt JPEG, missing field) and unreadable shard data (a truncated shard keeps what it
holds) are skipped and counted per worker and shard (the counts travel with each batch into the train
log, the checkpoint and the run's summary); each distinct problem is logged once (pipeline/shard_reader.py).
The run stops with a DataFormatError naming the shard when a shard yields no sample, when its sha256
differs from its manifest's, when MAX_BAD_IN_A_ROW reads fail in a row, or when more than
data.max_bad_share of a worker's reads failed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import signal
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from coir.common import fields
from coir.common.errors import ConfigError, DataFormatError
from coir.pipeline.augment import TripletAugment
from coir.pipeline.batch_pool import (
    POOL_KEY,
    BufferPool,
    Releaser,
    release_board,
    shares_memory,
    slots_per_worker,
)
from coir.pipeline.config import DataConfig, shard_checksums
from coir.pipeline.decode import PixelDecoder
from coir.pipeline.device_decode import JpegBatch, decodes_on_device, ships_as_bytes
from coir.pipeline.features import array_from_npy
from coir.pipeline.models.pixels import batch_buffer, stack_images
from coir.pipeline.shard_reader import ShardFault, SkipLog, read_shards

log = logging.getLogger("coir.data")

META_PREFIX = "_"  # batch keys that describe the batch rather than feed the model
MAX_BAD_IN_A_ROW = 1000  # beyond this the shards are wrong, not a few samples: stop with an error
MIN_JUDGED = 100  # samples and shard reads a worker makes before data.max_bad_share is judged
ERROR_KEY, SHARD_KEY = "_error", "_error_shard"  # a worker's fault, sent as a batch (see TrainStream)


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
    # per logical worker: skips this epoch (bad samples and unreadable shard data)
    bad: list[int] = field(default_factory=list)
    bad_before: int = 0  # skips in earlier epochs
    num_workers: int = 1
    world_size: int = 1
    skips: list[dict[str, int]] = field(default_factory=list)  # per logical worker: this epoch's by shard
    skips_before: dict[str, int] = field(default_factory=dict)  # by shard, in earlier epochs

    def __post_init__(self) -> None:
        if not self.skips:
            self.skips = [{} for _ in range(self.num_workers)]

    @property
    def bad_total(self) -> int:
        return self.bad_before + sum(self.bad)

    def skips_by_shard(self) -> dict[str, int]:
        total = Counter(self.skips_before)
        for worker in self.skips:
            total.update(worker)
        return dict(sorted(total.items()))

    def consumed(self, batch: dict[str, Any]) -> None:
        worker = int(batch["_worker"])
        self.raw[worker] = int(batch["_raw"])
        self.bad[worker] = int(batch["_bad"])
        self.skips[worker] = dict(batch["_skips"])
        self.batches += 1

    def next_epoch(self) -> None:
        self.bad_before = self.bad_total
        self.skips_before = self.skips_by_shard()
        self.epoch += 1
        self.batches = 0
        self.raw = [0] * self.num_workers
        self.bad = [0] * self.num_workers
        self.skips = [{} for _ in range(self.num_workers)]

    @classmethod
    def fresh(cls, num_workers: int, world_size: int) -> StreamState:
        workers = max(1, num_workers)
        return cls(raw=[0] * workers, bad=[0] * workers, num_workers=workers, world_size=world_size)


def _stack(items: Any) -> torch.Tensor:
    """A batch of uint8 images (stacked in their decoded HWC order) or of feature arrays."""
    return stack_images(items) if items[0].dtype == torch.uint8 else torch.stack(list(items))


class ImageDecoder:
    """raw triplet sample -> (query uint8 tensor, target uint8 tensor, text); raises on anything bad.
    (An image left as JPEG bytes for the device, data.decode=device, is None in its row.)
    Bytes through pipeline/decode.py (data.image_mode, data.draft_size) and the host part of the
    model's Processor; float conversion and normalisation happen on the device (models/pixels.py).

    Rows are made one batch at a time (`collate` ends a batch): each image is written into its place
    in one uint8 [B, S, S, 3] buffer per image field as it is decoded (a JPEG already at the model's
    size decodes straight into it), so a batch is never copied together. A call that raises leaves
    its place to the next sample. In a DataLoader worker the buffers come from its `pool`
    (pipeline/batch_pool.py): memory of batches the training process is done with."""

    fields = (fields.QUERY_IMAGE, fields.TARGET_IMAGE)
    keys = ("query_image", "target_image")  # their batch keys

    def __init__(self, processor: Any, config: DataConfig, pool: BufferPool | None = None) -> None:
        self.processor = processor
        self.pool = pool if pool is not None else BufferPool(None)  # the default keeps nothing
        self.pixels = PixelDecoder(processor, config.image_mode, config.draft_size)
        aug = config.augment
        # crops are resized straight to the model's input size (its Processor's resize is then a no-op)
        self.augment = TripletAugment(aug, getattr(processor, "image_size", None)) if aug.enabled else None
        self.batch_size = config.batch_size
        size = getattr(processor, "image_size", None)
        self.size = size if isinstance(size, int) else None  # None: images of any size, stacked
        # field -> (batch buffer, each row's two views, the buffer's pool slot)
        self._buffers: dict[int, tuple[torch.Tensor, list[tuple[np.ndarray, torch.Tensor]], int | None]] = {}
        self._filled = 0  # rows of the batch being made
        # data.decode=device: JPEGs at the model's size travel as bytes (pipeline/device_decode.py)
        self.on_device = config.decode == "device" and decodes_on_device(processor)
        self._encoded: dict[int, dict[int, bytes]] = {}  # field -> row -> JPEG bytes

    def _place(self, which: int) -> tuple[np.ndarray, torch.Tensor] | None:
        """This row's place for its image of field `which` in the batch buffer: the [S, S, 3] array
        decoders write and the same memory as the [3, S, S] tensor of the row."""
        if self.size is None or self._filled >= self.batch_size:
            return None
        if which not in self._buffers:
            buffer, slot = self.pool.take(self.batch_size, self.size, self.size, 3)
            # every row's two views made at once (indexing a tensor row by row costs ~20 us each)
            rows = list(zip(buffer.numpy(), buffer.permute(0, 3, 1, 2).unbind(0), strict=True))
            self._buffers[which] = (buffer, rows, slot)
        return self._buffers[which][1][self._filled]

    def _placed(self, which: int, image: torch.Tensor) -> torch.Tensor:
        """`image` [3, H, W] copied into its place in the batch buffer (returned as it is when it has
        not the buffer's shape)."""
        place = self._place(which)
        if place is None or image.shape != place[1].shape or image.dtype != torch.uint8:
            return image
        place[1].copy_(image)
        return place[1]

    def item(self, which: int, data: bytes) -> torch.Tensor | None:
        """The row's image of field `which` (None: kept as JPEG bytes for the device)."""
        if self.on_device and self._filled < self.batch_size and ships_as_bytes(data, self.size):
            self._encoded.setdefault(which, {})[self._filled] = data  # a failed sample's are overwritten
            return None
        place = self._place(which)
        image = self.pixels.tensor(data, None if place is None else place[0])
        return place[1] if image is None else self._placed(which, image)

    def __call__(
        self, sample: dict[str, Any], rng: random.Random | None = None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, str]:
        """With augmentation on, `rng` (one per sample, see TrainStream) makes every random choice."""
        for key in (*self.fields, fields.TEXT):
            if key not in sample:
                raise KeyError(f"missing field {key!r}")
        text = sample[fields.TEXT].decode("utf-8").strip()
        if self.augment is None or rng is None:
            query, target = (self.item(i, sample[key]) for i, key in enumerate(self.fields))
        else:
            ref, tgt, text = self.augment(*(self.pixels.pil(sample[key]) for key in self.fields), text, rng)
            query, target = (self._placed(i, self.processor.image(im)) for i, im in enumerate((ref, tgt)))
        self._filled += 1
        return query, target, text

    def _batch_images(
        self, which: int, images: Sequence[torch.Tensor | None], buffer: torch.Tensor | None
    ) -> torch.Tensor | JpegBatch:
        """The batch of `images` [3, H, W]: the `buffer` they were written into, else stacked; a
        JpegBatch when some are JPEG bytes for the device (None)."""
        # rows that hold bytes: a failed sample may have left its bytes in the row the next one decoded
        encoded = {
            row: data
            for row, data in self._encoded.get(which, {}).items()
            if row < len(images) and images[row] is None
        }
        if encoded:
            pixels = None
            host = [row for row in range(len(images)) if row not in encoded]
            if host:  # the rows decoded here: in their place in the batch buffer (else copied there)
                memory = buffer if buffer is not None else batch_buffer(len(images), self.size, self.size)
                pixels = memory[: len(images)].permute(0, 3, 1, 2)
                for row in host:
                    if images[row].data_ptr() != pixels[row].data_ptr():
                        pixels[row].copy_(images[row])
            return JpegBatch.of(encoded, pixels, self.size, len(images))
        if buffer is not None and len(images) <= len(buffer):
            start = buffer.data_ptr()
            row_bytes = buffer[0].numel()
            if all(image.data_ptr() == start + i * row_bytes for i, image in enumerate(images)):
                return buffer[: len(images)].permute(0, 3, 1, 2)
        return _stack(images)

    def collate(self, rows: list[tuple[Any, ...]]) -> dict[str, Any]:
        """The batch of `rows` (the rows made since the last batch): one entry per image key, then the
        model's text fields when the rows carry a text; the next call starts a new batch."""
        columns = list(zip(*rows, strict=True))
        batch: dict[str, Any] = {}
        pooled: list[tuple[str, int]] = []  # (key, slot) of the pool's buffers that leave in the batch
        for i, key in enumerate(self.keys):
            buffer, _, slot = self._buffers.pop(i, (None, None, None))
            batch[key] = self._batch_images(i, columns[i], buffer)
            if slot is not None and shares_memory(batch[key], buffer):
                pooled.append((key, slot))
            else:
                self.pool.give_back(slot)
        if pooled and self.pool.worker is not None:  # a worker's: the training process hands them back
            batch[POOL_KEY] = (self.pool.worker, pooled)
        if len(columns) > len(self.keys):
            batch.update(self.processor.text(list(columns[len(self.keys)])))
        self._buffers, self._encoded, self._filled = {}, {}, 0
        return batch


class FeatureDecoder(ImageDecoder):
    """The same for feature samples (`coir data features`): .npy arrays, kept in their stored dtype
    (the model casts them on the device)."""

    fields = (fields.QUERY_FEATURE, fields.TARGET_FEATURE)
    keys = ("query_feature", "target_feature")

    def __init__(self, processor: Any, config: DataConfig, pool: BufferPool | None = None) -> None:
        super().__init__(processor, config, pool)
        self.augment = None  # features are fixed outputs of the frozen part (check_values refuses both)

    def item(self, which: int, data: bytes) -> torch.Tensor:
        return torch.from_numpy(array_from_npy(data))


class SingleImageDecoder(ImageDecoder):
    """raw gallery-format sample -> (image tensor,), for models that train on single images."""

    fields = (fields.GALLERY_IMAGE,)
    keys = ("image",)

    def __init__(self, processor: Any, config: DataConfig, pool: BufferPool | None = None) -> None:
        super().__init__(processor, config, pool)
        self.augment = None  # check_samples refuses data.augment for single images

    def __call__(
        self, sample: dict[str, Any], rng: random.Random | None = None
    ) -> tuple[torch.Tensor | None]:
        if fields.GALLERY_IMAGE not in sample:
            raise KeyError(f"missing field {fields.GALLERY_IMAGE!r} (not a gallery-format sample)")
        image = self.item(0, sample[fields.GALLERY_IMAGE])
        self._filled += 1
        return (image,)


SAMPLE_KINDS = ("triplets", "images")  # RetrievalModel.training_samples
# the manifest kinds (datasets/shards/spec.py) a model of each sample kind trains on
MANIFEST_KINDS = {"triplets": ("triplets",), "images": ("gallery",)}


def decoder_for(
    processor: Any, config: DataConfig, samples: str = "triplets", pool: BufferPool | None = None
) -> ImageDecoder:
    """The decoder of what the model trains on (`samples`) and data.inputs says the shards hold."""
    return decoder_class(config, samples)(processor, config, pool)


def decoder_class(config: DataConfig, samples: str = "triplets") -> type[ImageDecoder]:
    if samples == "images":
        return SingleImageDecoder
    return FeatureDecoder if config.inputs == "features" else ImageDecoder


def check_samples(shards: list[str], samples: str, config: DataConfig) -> None:
    """Before training: the shards hold what a model training on `samples` reads (by the manifest of each
    folder that has one), and the data options apply to it. ConfigError naming the key and folder."""
    from coir.pipeline.features import folder_manifests

    if samples not in SAMPLE_KINDS:
        raise ValueError(f"training_samples must be one of {', '.join(SAMPLE_KINDS)}, got {samples!r}")
    if samples == "images" and config.inputs == "features":
        raise ConfigError("key 'data.inputs': this model trains on single images; features are of triplets")
    if samples == "images" and config.augment.enabled:
        raise ConfigError(
            "key 'data.augment.enabled': the augmentation is of triplets; this model trains on single images"
        )
    expected = MANIFEST_KINDS[samples]
    for folder, manifest in folder_manifests(shards).items():
        kind = (manifest or {}).get("kind")
        if kind is not None and kind not in expected:
            want = "single images (a gallery/ shard folder)" if samples == "images" else "triplets"
            raise ConfigError(f"key 'data.shards': {folder} holds {kind} shards; this model trains on {want}")


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
        samples: str = "triplets",
    ) -> None:
        """samples: what the model trains on (RetrievalModel.training_samples)."""
        super().__init__()
        self.shards = split_shards(shards, rank, world_size)
        self.samples = samples
        self.processor = processor
        self.config = config
        self.seed = seed
        self.rank = rank
        self.state = state
        self.batches_per_worker = config.samples_per_epoch_per_worker // config.batch_size
        self.checksums = shard_checksums(self.shards)
        self.slots = slots_per_worker(len(decoder_class(config, samples).keys), config.prefetch_factor)
        # the workers' release board (pipeline/batch_pool.py): set by open_batches for the workers it
        # starts; without one (a loader iterated directly) every batch gets new memory
        self.board: torch.Tensor | None = None

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
        skip = state.raw[logical] if logical < len(state.raw) else 0
        restored = state.skips[logical] if logical < len(state.skips) else {}
        skips = SkipLog(f"rank {self.rank} worker {logical}", restored)
        counting = [skip == 0]  # a resumed worker's re-read skips are in its checkpoint already
        samples = read_shards(iter(source), skips, self.checksums, counting)
        shuffled = wds.shuffle(
            self.config.shuffle_buffer, self.config.shuffle_initial, rng=random.Random(seed + 1)
        )(samples)
        try:
            yield from self._batches(shuffled, logical, skip, remaining, skips, counting)
        except ShardFault as fault:
            # as data, not as an exception: the DataLoader would re-raise it as a RuntimeError with the
            # worker's traceback; the training process raises it (open_batches)
            yield {ERROR_KEY: fault.message, SHARD_KEY: fault.shard}
        finally:
            skips.report_repeats()

    def _batches(
        self,
        shuffled: Iterator[dict[str, Any]],
        logical: int,
        skip: int,
        remaining: int,
        skips: SkipLog,
        counting: list[bool],
    ) -> Iterator[dict[str, Any]]:
        state = self.state
        decode = decoder_for(
            self.processor, self.config, self.samples, BufferPool.for_stream(self.board, self.slots)
        )
        bad_before = state.bad[logical] if logical < len(state.bad) else 0
        rows: list[tuple[Any, ...]] = []
        keys: list[str] = []
        shard_names: list[str] = []
        good = 0
        new_at_last_good = 0
        for raw_index, sample in enumerate(shuffled):
            if raw_index < skip:
                continue
            counting[0] = True
            shard = str(sample.get("__url__"))
            try:
                # augmentation seeded per raw sample: the same on resume, different each epoch
                rng = None
                if decode.augment is not None:
                    rng = random.Random(stream_seed(self.seed, state.epoch, self.rank, logical, raw_index))
                row = decode(sample, rng)
            except Exception as error:  # a bad sample must not stop training
                skips.skip(shard, f"bad sample {sample.get('__key__')} ({type(error).__name__}: {error})")
                self._check_bad(skips, good, skips.new - new_at_last_good, shard)
                continue
            good += 1
            self._check_bad(skips, good, skips.new - new_at_last_good, shard)  # read errors since the last
            new_at_last_good = skips.new
            rows.append(row)
            keys.append(str(sample.get("__key__")))
            shard_names.append(shard)
            if len(rows) < self.config.batch_size:
                continue
            batch = decode.collate(rows)
            batch.update(
                _worker=logical,
                _raw=raw_index + 1,
                _bad=bad_before + skips.new,
                _skips=dict(skips.by_shard),
                _keys=keys,
                _shards=shard_names,
            )
            yield batch
            rows, keys, shard_names = [], [], []
            remaining -= 1
            if remaining == 0:
                return

    def _check_bad(self, skips: SkipLog, good: int, in_a_row: int, shard: str) -> None:
        """ShardFault when the reads fail in a row, or in too large a share (data.max_bad_share)."""
        if in_a_row > MAX_BAD_IN_A_ROW:
            raise ShardFault(shard, f"{in_a_row} bad samples or unreadable shard reads in a row")
        judged = good + skips.new
        if judged >= MIN_JUDGED and skips.new > self.config.max_bad_share * judged:
            worst = max(skips.by_shard.items(), key=lambda item: item[1])
            raise ShardFault(
                worst[0],
                f"{skips.new} of the {judged} samples and shard reads of {skips.where} failed, more than "
                f"data.max_bad_share={self.config.max_bad_share} ({worst[1]} in this shard, the most; "
                "see the warnings above for what failed)",
            )


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
def open_batches(loader: DataLoader) -> Iterator[CheckedBatches]:
    """iter(loader), with its worker processes shut down however the block is left. A worker's fault
    (a shard that yields nothing, too many bad samples …) is raised here as a DataFormatError naming
    the shard. The workers of a TrainStream get a release board and refill batch memory that the
    training process let go of (pipeline/batch_pool.py).

    Workers ignore SIGTERM (see _worker_init), so workers left behind by an exception would block
    the interpreter's exit, where multiprocessing terminates and then joins its children.
    """
    stream, releaser = loader.dataset, None
    if isinstance(stream, TrainStream) and loader.num_workers > 0:
        stream.board = release_board(loader.num_workers, stream.slots)  # shared by the workers iter starts
        releaser = Releaser(stream.board)
    try:
        batches = iter(loader)
    finally:
        if releaser is not None:
            stream.board = None  # those workers have it; workers started later must not share it
    try:
        yield CheckedBatches(batches, releaser)
    finally:
        shutdown = getattr(batches, "_shutdown_workers", None)  # multi-process iterators only
        if shutdown is not None:
            shutdown()


class CheckedBatches:
    """The loader's batches; a worker's fault batch is raised as a DataFormatError naming the shard.
    With a `releaser`, the workers' batch buffers are handed back once unused (pipeline/batch_pool.py)."""

    def __init__(self, batches: Iterator[dict[str, Any]], releaser: Releaser | None = None) -> None:
        self.batches = batches
        self.releaser = releaser

    def __iter__(self) -> CheckedBatches:
        return self

    def __next__(self) -> dict[str, Any]:
        if self.releaser is not None:
            self.releaser.sweep()
        batch = next(self.batches)
        if ERROR_KEY in batch:
            raise DataFormatError(batch[SHARD_KEY], batch[ERROR_KEY])
        if self.releaser is not None:
            self.releaser.track(batch)
        return batch


def split_batch(batch: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Model inputs and the batch's metadata (keys starting with '_')."""
    inputs = {k: v for k, v in batch.items() if not k.startswith(META_PREFIX)}
    meta = {k: v for k, v in batch.items() if k.startswith(META_PREFIX)}
    return inputs, meta
