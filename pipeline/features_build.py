"""Build a feature shard folder from a triplet shard folder (`coir data features`; format: features.py).

Input shard i becomes output shard `triplets-<i>.tar`: the same samples in the same order with the
same keys, text and json, the two JPEGs replaced by the model's frozen image part applied to them
(decoded as the training loader decodes them: data.image_mode, data.draft_size, the model's image
transform), stored as float32 (or float16) .npy arrays. Each output shard is written under a
temporary name and renamed when complete, with its part file beside it (the plan / parts / finalize
of datasets/shards), so an interrupted build never leaves a half shard that looks whole; a rerun with
the same arguments writes only the missing shards, and a rerun with another model, input or setting
refuses the folder. An image that occurs in several triplets (a CIRR reference) goes through the
frozen part once: features are remembered by the JPEG's bytes (up to `memo_bytes`).
"""

from __future__ import annotations

import hashlib
import tarfile
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coir.common import fields
from coir.common.errors import ConfigError, DataFormatError
from coir.common.json_io import dump_json
from coir.datasets.shards.build import part_writer, prepare_plan
from coir.datasets.shards.manifest import finalize_folder
from coir.datasets.shards.plan import shard_name
from coir.datasets.shards.spec import PARTS, error_record
from coir.datasets.shards.writer import remove_stale_temps, sha256_file, write_shard
from coir.pipeline.config import DataConfig
from coir.pipeline.decode import PixelDecoder
from coir.pipeline.features import DTYPES, MANIFEST_KEY, array_to_npy, folder_manifests
from coir.pipeline.models.frozen import FrozenPart
from coir.pipeline.models.pixels import stack_images

KIND = "triplets"
REPLACED = {fields.QUERY_IMAGE: fields.QUERY_FEATURE, fields.TARGET_IMAGE: fields.TARGET_FEATURE}


def read_tar_samples(path: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {field: bytes}) of a WebDataset tar, in order (members `<key>.<field>`)."""
    try:
        with tarfile.open(path) as tar:
            key, sample = None, {}
            for member in tar:
                if not member.isfile():
                    continue
                name_key, _, field = Path(member.name).name.partition(".")
                if name_key != key:
                    if key is not None:
                        yield key, sample
                    key, sample = name_key, {}
                sample[field] = tar.extractfile(member).read()
            if key is not None:
                yield key, sample
    except tarfile.TarError as error:
        raise DataFormatError(path, f"unreadable tar shard: {error}") from None


class FeatureMemo:
    """Features by JPEG bytes (sha256), least recently used first out beyond `max_bytes`."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes, self.bytes = max_bytes, 0
        self.items: OrderedDict[str, np.ndarray] = OrderedDict()
        self.hits = 0

    def get(self, digest: str) -> np.ndarray | None:
        found = self.items.get(digest)
        if found is not None:
            self.items.move_to_end(digest)
            self.hits += 1
        return found

    def put(self, digest: str, features: np.ndarray) -> None:
        self.items[digest] = features
        self.bytes += features.nbytes
        while self.bytes > self.max_bytes and len(self.items) > 1:
            _, dropped = self.items.popitem(last=False)
            self.bytes -= dropped.nbytes


class FeatureWriter:
    """Turns triplet samples into feature samples, running the frozen part in batches."""

    def __init__(
        self,
        frozen: FrozenPart,
        decoder: PixelDecoder,
        device: str,
        batch_size: int,
        dtype: str,
        memo_bytes: int,
    ) -> None:
        self.frozen, self.decoder, self.device = frozen, decoder, device
        self.batch_size, self.dtype = batch_size, np.dtype(dtype)
        self.memo = FeatureMemo(memo_bytes)
        self.encoded = 0

    @torch.no_grad()
    def _encode(self, images: dict[str, torch.Tensor]) -> None:
        digests = list(images)
        for start in range(0, len(digests), self.batch_size):
            chunk = digests[start : start + self.batch_size]
            pixels = stack_images([images[d] for d in chunk]).to(self.device)  # uint8: normalised here
            batch = self.decoder.processor.normalize(pixels)
            out = self.frozen.module(batch).float().cpu().numpy().astype(self.dtype)
            for digest, row in zip(chunk, out, strict=True):
                self.memo.put(digest, row)
            self.encoded += len(chunk)

    def convert(
        self, samples: list[tuple[str, dict[str, bytes]]], shard: Path
    ) -> tuple[list[tuple[str, dict[str, bytes]]], list[dict[str, str]]]:
        """Feature samples of a group of triplet samples, and the samples skipped (error records)."""
        good: list[tuple[str, dict[str, bytes], dict[str, str]]] = []
        errors: list[dict[str, str]] = []
        pending: dict[str, torch.Tensor] = {}
        for key, sample in samples:
            try:
                missing = [f for f in (*REPLACED, fields.TEXT) if f not in sample]
                if missing:
                    raise KeyError(f"missing field {missing[0]!r}")
                digests = {}
                for field in REPLACED:
                    digest = hashlib.sha256(sample[field]).hexdigest()
                    if digest not in pending and self.memo.get(digest) is None:
                        pending[digest] = self.decoder.tensor(sample[field])
                    digests[field] = digest
            except Exception as error:  # a bad sample is recorded and skipped, as the loader would
                reason = "missing_field" if isinstance(error, KeyError) else "bad_image"
                errors.append(error_record(KIND, key, str(shard), reason, repr(error)))
                continue
            good.append((key, sample, digests))
        self._encode(pending)
        out = []
        for key, sample, digests in good:
            converted = {}
            for field, data in sample.items():
                if field in REPLACED:
                    found = self.memo.items.get(digests[field])
                    if found is None:  # pushed out of the memo by this very group: recompute
                        self._encode({digests[field]: self.decoder.tensor(data)})
                        found = self.memo.items[digests[field]]
                    converted[REPLACED[field]] = array_to_npy(found)
                else:
                    converted[field] = data
            out.append((key, converted))
        return out, errors


def _source_labels(shards: list[str]) -> dict[str, Any]:
    """The dataset and split of the input folders' manifests, where they all name the same ones."""
    manifests = [m or {} for m in folder_manifests(shards).values()]
    return {
        key: values.pop()
        for key in ("dataset", "split")
        if len(values := {m.get(key) for m in manifests}) == 1 and None not in values
    }


def _source_shards(shards: list[str]) -> list[dict[str, Any]]:
    """Name, size and sha256 of each input shard (from its folder's manifest when listed there)."""
    manifests = folder_manifests(shards)
    for folder, manifest in manifests.items():
        if manifest is None:
            continue
        if MANIFEST_KEY in manifest:
            raise ConfigError(f"--shards: {folder} already holds features (coir data features output)")
        if manifest.get("kind") != KIND:
            raise ConfigError(
                f"--shards: {folder} holds {manifest.get('kind')!r} shards; coir data features reads "
                "triplet shards (query.jpg + target.jpg)"
            )
    out = []
    for shard in shards:
        path = Path(shard)
        manifest = manifests[path.parent] or {}
        listed = {s["name"]: s for s in manifest.get("shards", [])}.get(path.name)
        if listed is None or listed["bytes"] != path.stat().st_size:
            listed = {"name": path.name, "bytes": path.stat().st_size, "sha256": sha256_file(path)}
        out.append(
            {"name": listed["name"], "bytes": listed["bytes"], "sha256": listed["sha256"], "path": path}
        )
    return out


def build_feature_shards(
    frozen: FrozenPart,
    processor: Any,
    shards: list[str],
    out: str | Path,
    data: DataConfig,
    device: str = "cpu",
    batch_size: int = 64,
    dtype: str = "float32",
    memo_bytes: int = 1 << 30,
    progress: bool = True,
) -> dict[str, Any]:
    """Write the feature shards of `shards` (resolved tar paths) into `out`; returns the manifest
    with this run's "report" (shards written now, images run through the frozen part, memo hits)."""
    from tqdm import tqdm

    if dtype not in DTYPES:
        raise ConfigError(f"--dtype: must be {' or '.join(DTYPES)}, got {dtype!r}")
    if batch_size < 1:
        raise ConfigError(f"--batch-size: must be >= 1, got {batch_size}")
    folder = Path(out)
    sources = _source_shards(shards)
    block = {
        "identity": frozen.identity,
        "identity_sha256": frozen.identity_sha256,
        "dtype": dtype,
        "decode": {"image_mode": data.image_mode, "draft_size": data.draft_size},
        "source": [{k: s[k] for k in ("name", "bytes", "sha256")} for s in sources],
    }
    plan = {
        "kind": KIND,
        "num_shards": len(sources),
        "shard_size": None,
        "index_columns": [["source_shard", "string"]],
        "meta": {MANIFEST_KEY: block, **_source_labels(shards)},
        "errors": [],
    }
    names = [shard_name(KIND, i) for i in range(len(sources))]
    if not prepare_plan(folder, dump_json(plan, indent=1)):
        remove_stale_temps(folder, names)
        pixels = PixelDecoder(processor, data.image_mode, data.draft_size)
        writer = FeatureWriter(frozen, pixels, device, batch_size, dtype, memo_bytes)
        pending = [
            i for i in range(len(sources))
            if not ((folder / names[i]).is_file() and (folder / PARTS / f"{names[i]}.json").is_file())
        ]  # fmt: skip
        written = 0
        with tqdm(total=len(pending), desc="features", unit="shard", disable=not progress) as bar:
            for i in pending:
                _write_one(writer, sources[i]["path"], folder, names[i], batch_size)
                written += 1
                bar.update()
        report = {"shards_written": written, "images_encoded": writer.encoded, "memo_hits": writer.memo.hits}
    else:
        report = {"shards_written": 0, "images_encoded": 0, "memo_hits": 0}
    manifest = finalize_folder(folder)
    return {**manifest, "report": report}


def _write_one(writer: FeatureWriter, source: Path, folder: Path, name: str, group: int) -> None:
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []

    def samples() -> Iterator[tuple[str, dict[str, bytes]]]:
        # converted a group at a time (one frozen-part batch), streamed into the tar
        batch: list[tuple[str, dict[str, bytes]]] = []
        for item in (*read_tar_samples(source), None):
            if item is not None:
                batch.append(item)
            if batch and (item is None or len(batch) == group):
                converted, skipped = writer.convert(batch, source)
                errors.extend(skipped)
                rows.extend({"key": key, "shard": name, "source_shard": source.name} for key, _ in converted)
                yield from converted
                batch = []

    write_shard(folder / name, samples(), before_rename=part_writer(folder, name, rows, errors))
