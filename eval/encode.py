"""Embedding galleries and queries: batched DataLoaders, an on-disk gallery cache, several ranks.

Images decode in the loaders as the training loader decodes them (pipeline/decode.py) and travel as
uint8; the processor's `normalize` turns each batch into the model's floats on the device.

States (see coir.pipeline.models.state) are a tensor or a tree of tensors, batch first; every
function here handles both. Gallery states are cached per (checkpoint, model variant, ordered
image list, transform): the key hashes the identity of the checkpoint's files (path, size, mtime),
every image in order (path, size, mtime) and the processor's transform settings. A changed list, or
an image rewritten at the same path, misses. Floating states are float32 on every path (one rank,
several ranks, from the cache), whatever precision the model computes in.

With torch.distributed initialised, each rank embeds a contiguous slice of the gallery and the
slices are all-gathered (gloo on CPU, NCCL on GPU); rank 0 writes the cache.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader, Dataset

from coir.common.atomic import atomic_path
from coir.common.errors import DataFormatError, MissingInputError
from coir.pipeline.decode import PixelDecoder
from coir.pipeline.models.pixels import stack_images, to_model_inputs
from coir.pipeline.models.state import State, to_float32, tree_cat, tree_len, tree_map, tree_to

if TYPE_CHECKING:
    from coir.eval.features import FeatureSource

CACHE_VERSION = 2  # 2: the cache holds a state tree
GALLERY_PART = 8192  # images per resumable part of a cached gallery being embedded


def default_cache_dir() -> Path:
    return Path(os.environ.get("COIR_CACHE_DIR", Path.home() / ".cache" / "coir" / "gallery"))


# ---------------------------------------------------------------- datasets


def _load_image(path: Path) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            return image
    except FileNotFoundError:
        raise MissingInputError(path, "image") from None
    except (UnidentifiedImageError, OSError) as error:
        raise DataFormatError(path, f"not a readable image: {error}") from None


def _load_pixels(path: Path, decoder: PixelDecoder) -> torch.Tensor:
    """uint8 [3, H, W] of an image file through the processor's host part (the loader's decoder)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise MissingInputError(path, "image") from None
    try:
        return decoder.tensor(data)
    except (OSError, SyntaxError, ValueError) as error:  # PIL's UnidentifiedImageError is an OSError
        raise DataFormatError(path, f"not a readable image: {error}") from None


class ImageDataset(Dataset):
    """uint8 images (the processor's host part); `normalize` runs on the device, batched."""

    def __init__(self, paths: Sequence[Path], processor: Any) -> None:
        self.paths, self.decoder = list(paths), PixelDecoder(processor)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return _load_pixels(self.paths[i], self.decoder)


class QueryDataset(Dataset):
    def __init__(self, paths: Sequence[Path], texts: Sequence[str], processor: Any) -> None:
        self.paths, self.texts, self.decoder = list(paths), list(texts), PixelDecoder(processor)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        return _load_pixels(self.paths[i], self.decoder), self.texts[i]


class _QueryCollate:
    """Stacks images and tokenises the batch's texts at once (picklable for worker processes)."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor

    def __call__(self, items: list[tuple[torch.Tensor, str]]) -> dict[str, torch.Tensor]:
        images = stack_images([image for image, _ in items])
        tokens = self.processor.text([text for _, text in items])
        return {"query_image": images, **tokens}


def check_images_exist(paths: Sequence[Path], what: str = "image") -> None:
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise MissingInputError(missing[0], f"{what} (and {len(missing) - 1} more of {len(paths)})")


def _loader(dataset: Dataset, batch_size: int, num_workers: int, collate: Any = None) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate,
        persistent_workers=False,
    )


def _progress(iterable: Any, total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="batch", leave=False)


@torch.no_grad()
def encode_images(
    model: Any,
    paths: Sequence[Path],
    batch_size: int = 128,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    progress: bool = False,
    desc: str = "gallery",
) -> torch.Tensor:
    """model.encode_target over the images, in order -> gallery state on `device` (None: no images)."""
    check_images_exist(paths, "gallery image")
    processor = model.processor()
    loader = _loader(ImageDataset(paths, processor), batch_size, num_workers, stack_images)
    out = [
        to_float32(model.encode_target(processor.normalize(images.to(device, non_blocking=True))))
        for images in _progress(loader, len(loader), desc, progress)
    ]
    return tree_cat(out) if out else None


@torch.no_grad()
def encode_features(
    model: Any, features: torch.Tensor, batch_size: int = 128, progress: bool = False
) -> State | None:
    """model.encode_target_features over rows of frozen-part features -> gallery state (None: no rows)."""
    starts = range(0, features.shape[0], batch_size)
    out = [
        to_float32(model.encode_target_features(features[i : i + batch_size]))
        for i in _progress(starts, len(starts), "gallery", progress)
    ]
    return tree_cat(out) if out else None


@torch.no_grad()
def encode_queries(
    model: Any,
    paths: Sequence[Path],
    texts: Sequence[str],
    batch_size: int = 128,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    progress: bool = False,
    features: FeatureSource | None = None,
) -> torch.Tensor:
    """model.encode_query over (reference image, text) pairs, in order -> query state on `device`
    (None: no queries). With `features` (prepared for these paths) the references are their
    frozen-part features, not images."""
    processor = model.processor()
    _count("queries", len(paths))
    if features is not None:
        rows = features.rows(paths)
        return _encode_queries_from_features(model, processor, rows, texts, batch_size, device, progress)
    check_images_exist(paths, "reference image")
    loader = _loader(QueryDataset(paths, texts, processor), batch_size, num_workers, _QueryCollate(processor))
    out = [
        to_float32(model.encode_query(to_model_inputs(batch, processor, device)))
        for batch in _progress(loader, len(loader), "queries", progress)
    ]
    return tree_cat(out) if out else None


def _encode_queries_from_features(
    model: Any,
    processor: Any,
    rows: torch.Tensor,
    texts: Sequence[str],
    batch_size: int,
    device: str | torch.device,
    progress: bool,
) -> State | None:
    starts = range(0, len(texts), batch_size)
    out = []
    for i in _progress(starts, len(starts), "queries", progress):
        batch = {"query_feature": rows[i : i + batch_size], **processor.text(list(texts[i : i + batch_size]))}
        out.append(to_float32(model.encode_query(tree_to(batch, device))))
    return tree_cat(out) if out else None


# ---------------------------------------------------------------- cache key


def checkpoint_fingerprint(path: str | Path) -> str:
    """Identity of a checkpoint's files (relative path, size, mtime) — not their content, which
    would cost a full read of the weights on every run. The provenance card is left out: evaluations
    append to it without changing the model."""
    from coir.pipeline.card import CARD

    path = Path(path).resolve()
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.name != CARD) if path.is_dir() else [path]
    digest = hashlib.sha256(str(path).encode())
    for f in files:
        stat = f.stat()
        digest.update(
            f"{f.relative_to(path) if path.is_dir() else f.name}|{stat.st_size}|{stat.st_mtime_ns}\n".encode()
        )
    return digest.hexdigest()


def transform_identity(processor: Any) -> str:
    """The settings of the processor's image transform (dataclass fields of simple types)."""
    if dataclasses.is_dataclass(processor):
        simple = {
            f.name: getattr(processor, f.name)
            for f in dataclasses.fields(processor)
            if isinstance(getattr(processor, f.name), (int, float, str, bool, tuple, type(None)))
        }
        return f"{type(processor).__qualname__}:{json.dumps(simple, sort_keys=True, default=str)}"
    return f"{type(processor).__qualname__}:{getattr(processor, 'image_size', '')}"


def model_identity(model: Any) -> str:
    try:
        config = json.dumps(model.export_config(), sort_keys=True, default=str)
    except Exception:  # a model without a JSON-ready config still gets a stable tag
        config = type(model).__qualname__
    return f"{getattr(model, 'name', type(model).__name__)}:{config}"


def gallery_cache_key(fingerprint: str, model: Any, paths: Sequence[Path]) -> str:
    digest = hashlib.sha256(f"v{CACHE_VERSION}|{fingerprint}|{model_identity(model)}".encode())
    digest.update(transform_identity(model.processor()).encode())
    digest_files(digest, paths, "gallery image")
    return digest.hexdigest()[:32]


def digest_files(digest: Any, paths: Sequence[Path], what: str) -> None:
    """Feed each file's path, size and mtime into `digest` (a hashlib object), in order: a cache key
    that changes when a file is replaced. MissingInputError naming `what` for a missing file."""
    for p in paths:
        try:
            stat = os.stat(p)
        except FileNotFoundError:
            raise MissingInputError(p, what) from None
        digest.update(f"\0{p}|{stat.st_size}|{stat.st_mtime_ns}".encode())


def save_atomic(path: Path, payload: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_cached(path: Path, key: str, n: int) -> State | None:
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a damaged cache entry is recomputed, never trusted
        return None
    if not isinstance(payload, dict):
        return None
    state = payload.get("state")
    if payload.get("key") != key or state is None:
        return None
    try:
        if tree_len(state) != n:
            return None
    except (TypeError, ValueError):
        return None
    return to_float32(state)


# ---------------------------------------------------------------- ranks


_LOCAL_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar("coir_eval_local_only", default=False)


@contextlib.contextmanager
def local_only() -> Iterator[None]:
    """Evaluate in this process alone even inside a process group (a validator run by rank 0)."""
    token = _LOCAL_ONLY.set(True)
    try:
        yield
    finally:
        _LOCAL_ONLY.reset(token)


_COUNTS: contextvars.ContextVar[dict[str, int] | None] = contextvars.ContextVar(
    "coir_eval_counts", default=None
)


@contextlib.contextmanager
def counting() -> Iterator[dict[str, int]]:
    """{"gallery": images, "queries": queries} this rank embedded inside the block (a cache hit embeds
    none): with several ranks each does its own slice."""
    counts = {"gallery": 0, "queries": 0}
    token = _COUNTS.set(counts)
    try:
        yield counts
    finally:
        _COUNTS.reset(token)


def _count(kind: str, n: int) -> None:
    counts = _COUNTS.get()
    if counts is not None:
        counts[kind] += n


def world() -> tuple[int, int]:
    """(rank, world size) of the default process group; (0, 1) without one or under local_only()."""
    import torch.distributed as dist

    if not _LOCAL_ONLY.get() and dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """Contiguous slice [start, stop) of n items for `rank` (sizes differ by at most one)."""
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def gather_rows(local: State | None, n_total: int) -> State:
    """All-gather contiguous row slices of a state (each rank holds rows shard_bounds gives it;
    a rank may hold none). Leaves are padded to the largest slice, gathered, then trimmed."""
    import torch.distributed as dist

    rank, world_size = world()
    if world_size == 1:
        return local
    # every rank needs the tree's structure, leaf shapes and dtypes: the first rank with rows sends it
    layout = None if local is None else tree_map(lambda leaf: (tuple(leaf.shape[1:]), leaf.dtype), local)
    layouts: list[Any] = [None] * world_size
    dist.all_gather_object(layouts, layout)
    layout = next(item for item in layouts if item is not None)
    if local is None:
        device = "cuda" if dist.get_backend() == "nccl" else "cpu"
        local = _empty_like_layout(layout, device)
    sizes = [shard_bounds(n_total, r, world_size) for r in range(world_size)]
    largest = max(stop - start for start, stop in sizes)

    def gather_leaf(leaf: torch.Tensor) -> torch.Tensor:
        padded = leaf.new_zeros((largest, *leaf.shape[1:]))
        padded[: leaf.shape[0]] = leaf
        parts = [torch.empty_like(padded) for _ in range(world_size)]
        dist.all_gather(parts, padded)
        return torch.cat([part[: stop - start] for part, (start, stop) in zip(parts, sizes, strict=True)])

    return tree_map(gather_leaf, local)


def _empty_like_layout(layout: Any, device: str) -> State:
    if isinstance(layout, tuple) and len(layout) == 2 and isinstance(layout[1], torch.dtype):
        return torch.empty((0, *layout[0]), dtype=layout[1], device=device)
    if isinstance(layout, dict):
        return {key: _empty_like_layout(value, device) for key, value in layout.items()}
    return type(layout)(_empty_like_layout(value, device) for value in layout)


def all_ranks_agree(flag: bool) -> bool:
    """True when `flag` holds on every rank."""
    import torch.distributed as dist

    if world()[1] == 1:
        return flag
    flags: list[Any] = [None] * world()[1]
    dist.all_gather_object(flags, flag)
    return all(flags)


def embed_gallery(
    model: Any,
    paths: Sequence[Path],
    fingerprint: str | None = None,
    cache_dir: str | Path | None = None,
    batch_size: int = 128,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    progress: bool = False,
    features: FeatureSource | None = None,
    part_size: int = GALLERY_PART,
) -> State:
    """The gallery's state on `device`, from the cache when the key matches.

    Caching needs a checkpoint fingerprint (an in-memory model being trained has none). A cached
    gallery larger than `part_size` images is embedded part by part, each part saved under
    <cache>/gallery-<key>.parts/ as it completes: an interrupted run (a 123k-image CIRCO gallery)
    resumes with the first missing part; the parts make way for the one cache file at the end. With
    `features` (a model with a frozen image part) the state is computed from the frozen part's
    features of the images (cached per identity, see coir.eval.features), not from the images.
    """
    if not paths:
        raise DataFormatError(Path("."), "the gallery holds no images")
    rank, _ = world()
    cache_file = key = None
    if cache_dir is not None and fingerprint is not None:
        key = gallery_cache_key(fingerprint, model, paths)
        cache_file = Path(cache_dir) / f"gallery-{key}.pt"
        hit = load_cached(cache_file, key, len(paths))
        if all_ranks_agree(hit is not None):
            return tree_to(hit, device)
    if features is not None:
        features.prepare(paths)
    bounds = [(lo, min(lo + part_size, len(paths))) for lo in range(0, len(paths), part_size)]
    parts_dir = cache_file.with_suffix(".parts") if cache_file is not None and len(bounds) > 1 else None
    states = []
    bar = _part_bar(len(paths), progress and rank == 0 and len(bounds) > 1)
    for n, (lo, hi) in enumerate(bounds):
        part_file = parts_dir / f"part-{n:06d}.pt" if parts_dir is not None else None
        part_key = f"{key}|{lo}:{hi}"
        done = load_cached(part_file, part_key, hi - lo) if part_file is not None else None
        if part_file is not None and all_ranks_agree(done is not None):
            states.append(done)
        else:
            state = _embed_part(model, paths[lo:hi], batch_size, device, num_workers, progress, features)
            state = tree_map(lambda leaf: leaf.detach().cpu(), state)
            if part_file is not None and rank == 0:
                save_atomic(part_file, {"key": part_key, "state": state})
            states.append(state)
        bar.update(hi - lo)
    bar.close()
    state = tree_cat(states)
    if cache_file is not None and rank == 0:
        save_atomic(cache_file, {"key": key, "state": state})
        if parts_dir is not None:
            shutil.rmtree(parts_dir, ignore_errors=True)
    return tree_to(state, device)


def _part_bar(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc="gallery parts", unit="img", disable=not enabled)


def _embed_part(
    model: Any,
    paths: Sequence[Path],
    batch_size: int,
    device: str | torch.device,
    num_workers: int,
    progress: bool,
    features: FeatureSource | None,
) -> State:
    """Every rank embeds its slice of `paths`; the slices are gathered."""
    rank, world_size = world()
    start, stop = shard_bounds(len(paths), rank, world_size)
    _count("gallery", stop - start)
    if features is not None:
        local = encode_features(model, features.rows(paths[start:stop]), batch_size, progress and rank == 0)
    else:
        local = encode_images(
            model, paths[start:stop], batch_size, device, num_workers, progress and rank == 0
        )
    return gather_rows(local, len(paths))
