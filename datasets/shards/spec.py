"""What a shard build is made of: samples, shard sets, and the files a build keeps in its folder.

A shard set is one output folder (`triplets/`, `gallery/`, `queries/`) with its ordered samples.
While a build runs, the folder holds `_parts/plan.json` (the fingerprint of the plan; every task
writes the same bytes) and one `_parts/<shard>.json` per finished shard (its index rows, skipped
samples, sha256 and size). The shard itself is renamed into place after its part file, so a shard
with a final name is complete; `finalize` merges the parts into manifest.json, index.parquet and
errors.parquet and removes `_parts/`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coir.common.errors import CoirError
from coir.common.json_io import dump_json
from coir.common.unique import duplicates
from coir.datasets.shards.plan import num_shards_for, shard_name

PARTS = "_parts"
PLAN = "plan.json"
MANIFEST = "manifest.json"
INDEX = "index.parquet"
ERRORS = "errors.parquet"

ERROR_COLUMNS = ("kind", "id", "path", "reason", "message")


@dataclass(frozen=True)
class SampleSpec:
    """One sample: images to encode (field -> source path), its text, json metadata, index row."""

    key: str
    images: tuple[tuple[str, str], ...]
    text: str | None
    meta: dict[str, Any]
    row: dict[str, Any]


@dataclass
class ShardSet:
    folder: Path
    kind: str  # "triplets" | "gallery" | "queries": also the shard name prefix
    samples: list[SampleSpec]
    shard_size: int
    index_columns: tuple[tuple[str, str], ...]  # (name, arrow type: "string" | "int64" | "float64")
    meta: dict[str, Any] = field(default_factory=dict)  # goes into manifest.json (config, report…)
    errors: list[dict[str, str]] = field(default_factory=list)  # inputs skipped before sharding

    def __post_init__(self) -> None:
        """Two samples with one key would be two tar members of one name, and a reader keeps one."""
        repeated = duplicates(s.key for s in self.samples)
        if repeated:
            first, repeat, key = repeated[0]
            rows = [json.dumps(self.samples[i].row, default=str)[:200] for i in (first, repeat)]
            raise CoirError(
                f"{self.folder}: samples {rows[0]} and {rows[1]} share the shard key {key!r} "
                f"({len(repeated)} repeated key(s)); every id and name of a build must map to its own key"
            )

    @property
    def num_shards(self) -> int:
        return num_shards_for(len(self.samples), self.shard_size)

    def shard_path(self, index: int) -> Path:
        return self.folder / shard_name(self.kind, index)

    def part_path(self, index: int) -> Path:
        return self.folder / PARTS / (shard_name(self.kind, index) + ".json")

    def plan(self) -> dict[str, Any]:
        """Everything that determines the output bytes; resuming requires the same plan."""
        keys = hashlib.sha256("\n".join(s.key for s in self.samples).encode()).hexdigest()
        specs = hashlib.sha256(b"".join(dump_json([s.images, s.text, s.meta]) for s in self.samples))
        return {
            "kind": self.kind,
            "num_samples": len(self.samples),
            "num_shards": self.num_shards,
            "shard_size": self.shard_size,
            "index_columns": [list(c) for c in self.index_columns],
            "keys_sha256": keys,
            "samples_sha256": specs.hexdigest(),
            "meta": self.meta,
            "errors": self.errors,
        }


def error_record(kind: str, id: str, path: str, reason: str, message: str) -> dict[str, str]:
    return {"kind": kind, "id": str(id), "path": str(path), "reason": reason, "message": message}
