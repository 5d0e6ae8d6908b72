"""Frozen-part features of image files for evaluation: computed once, reused by every checkpoint.

A model with a frozen image part (RetrievalModel.frozen_image_features()) is evaluated from that
part's features: the gallery state is encode_target_features(features), the query state takes
query_feature in place of query_image. The features depend on the part's identity (architecture,
weights, transform) and the image files only, not on the checkpoint, so they are cached on disk per

    (identity, ordered list of distinct image files with their size and mtime)

as `features-<key>.pt` beside the gallery states; ten checkpoints of a frozen-backbone run sharing
the backbone run the CNN once. Without a cache folder (the trainer's validation) they are kept in
this process instead, for the same identity and list. Within one task the query references that are
gallery images take the gallery's rows; only the others go through the part.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from coir.eval.encode import (
    all_ranks_agree,
    digest_files,
    encode_images,
    gather_rows,
    load_cached,
    save_atomic,
    shard_bounds,
    world,
)
from coir.pipeline.models.frozen import FrozenPart

FEATURES_VERSION = 1
_MEMORY: OrderedDict[str, torch.Tensor] = OrderedDict()  # key -> features, when there is no cache folder
_MEMORY_BYTES = 2 << 30  # what _MEMORY may hold (least recently stored out first)


class _FrozenEncoder:
    """The frozen part in the shape encode_images expects (processor() + encode_target)."""

    def __init__(self, model: Any, frozen: FrozenPart) -> None:
        self.model, self.frozen = model, frozen

    def processor(self) -> Any:
        return self.model.processor()

    def encode_target(self, images: torch.Tensor) -> torch.Tensor:
        return self.frozen.module(images)


def features_key(identity: str, paths: Sequence[Path]) -> str:
    digest = hashlib.sha256(f"features v{FEATURES_VERSION}|{identity}".encode())
    digest_files(digest, paths, "image")
    return digest.hexdigest()[:32]


class FeatureSource:
    """The frozen part's features of image files (float32 rows on `device`), each file through the part
    at most once per run and, with a cache folder, once per identity and file list across runs."""

    def __init__(
        self,
        model: Any,
        frozen: FrozenPart,
        cache_dir: str | Path | None,
        batch_size: int = 128,
        device: str | torch.device = "cpu",
        num_workers: int = 0,
        progress: bool = False,
    ) -> None:
        self.encoder = _FrozenEncoder(model, frozen)
        self.identity = frozen.identity
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.batch_size, self.device, self.num_workers, self.progress = (
            batch_size,
            device,
            num_workers,
            progress,
        )
        self.rows_of: dict[Path, torch.Tensor] = {}
        self.computed = 0  # images this source ran through the frozen part

    def prepare(self, paths: Sequence[Path]) -> None:
        """Make the features of `paths` available to rows(). Collective with several ranks: every rank
        passes the same list."""
        new = [Path(p) for p in dict.fromkeys(paths) if Path(p) not in self.rows_of]
        if not new:
            return
        key = features_key(self.identity, new)
        cache_file = self.cache_dir / f"features-{key}.pt" if self.cache_dir is not None else None
        found = load_cached(cache_file, key, len(new)) if cache_file is not None else _MEMORY.get(key)
        rank, world_size = world()
        if all_ranks_agree(found is not None):
            features = found.to(self.device)
        else:
            start, stop = shard_bounds(len(new), rank, world_size)
            local = encode_images(
                self.encoder, new[start:stop], self.batch_size, self.device, self.num_workers,
                self.progress and rank == 0, desc="frozen features",
            )  # fmt: skip
            self.computed += stop - start
            features = gather_rows(local, len(new))
            cpu = features.detach().cpu()
            if cache_file is None:
                _remember(key, cpu)
            elif rank == 0:
                save_atomic(cache_file, {"key": key, "identity": self.identity, "state": cpu})
        self.rows_of.update(zip(new, features, strict=True))

    def rows(self, paths: Sequence[Path]) -> torch.Tensor:
        """[len(paths), ...] features of prepared paths, in order."""
        if not paths:
            known = next(iter(self.rows_of.values()), None)
            shape = () if known is None else tuple(known.shape)
            return torch.empty((0, *shape), device=self.device)
        return torch.stack([self.rows_of[Path(p)] for p in paths])


def _remember(key: str, features: torch.Tensor) -> None:
    _MEMORY[key] = features
    while len(_MEMORY) > 1 and sum(t.numel() * t.element_size() for t in _MEMORY.values()) > _MEMORY_BYTES:
        _MEMORY.popitem(last=False)
