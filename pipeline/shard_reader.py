"""Raw training samples from shard files, with every failure counted and bounded (one worker's reader).

A shard that cannot be opened or read to its end (truncated, random bytes, a bad tar header) is a read
error: counted for that shard, logged once, and the stream goes on with what the shard held. A read of
a shard that yields no sample at all stops the run with a ShardFault naming the shard: the resampled
shard stream would otherwise draw it again and again, forever, without ever making a batch. When the
shard's folder has a manifest, the bytes read are hashed as they stream by and a complete read whose
sha256 differs from the manifest's stops the run too (the size was checked before training started,
pipeline/config.py).

SkipLog keeps the skips of one worker (read errors and bad samples) per shard and logs each distinct
problem once; at the end of the worker's epoch one line says how often the logged ones repeated.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterator
from typing import Any, BinaryIO

from coir.common.tar_members import tar_members

log = logging.getLogger("coir.data")


class ShardFault(Exception):
    """A shard the run cannot go on with; carried to the training process as data (see data.py)."""

    def __init__(self, shard: str, message: str) -> None:
        super().__init__(f"{shard}: {message}")
        self.shard = shard
        self.message = message


class SkipLog:
    """One worker's skips per shard, restored from the checkpoint on resume; logs each problem once."""

    def __init__(self, where: str, restored: dict[str, int] | None = None) -> None:
        self.where = where  # "rank r worker w", for the log
        self.by_shard: Counter[str] = Counter(restored or {})
        self.new = 0  # skips counted by this reader (not restored ones)
        self.repeats: Counter[tuple[str, str]] = Counter()

    def skip(self, shard: str, problem: str) -> None:
        """Count one skip of `shard`; log `problem` unless this shard already had it."""
        self.by_shard[shard] += 1
        self.new += 1
        seen = (shard, problem)
        if seen not in self.repeats:
            log.warning("%s: skipped %s in %s (repeats are counted, not logged)", self.where, problem, shard)
        self.repeats[seen] += 1

    def report_repeats(self) -> None:
        for (shard, problem), count in sorted(self.repeats.items()):
            if count > 1:
                log.warning("%s: %s in %s: %d times this epoch", self.where, problem, shard, count)

    @property
    def total(self) -> int:
        return sum(self.by_shard.values())


class _HashingReader:
    """A file opened for reading that hashes what is read through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()

    def peek(self, size: int = 0) -> bytes:
        return self.raw.peek(size)  # type: ignore[attr-defined]

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.sha.update(data)
        return data

    def rest_digest(self) -> str:
        """The sha256 of the whole file: reads what the tar reader left (end-of-archive padding)."""
        while self.read(1 << 20):
            pass
        return self.sha.hexdigest()


def _files(stream: Any, shard: str) -> Iterator[dict[str, Any]]:
    for name, data in tar_members(stream):  # raises on anything unreadable
        yield {"fname": name, "data": data, "__url__": shard}


def read_shards(
    shards: Iterator[dict[str, Any]],
    skips: SkipLog,
    checksums: dict[str, str],
    counting: list[bool],
) -> Iterator[dict[str, Any]]:
    """Raw samples ({"__key__", "__url__", field: bytes}) of each shard `shards` yields ({"url": path}).

    `counting[0]` false: read errors are not counted (a resumed worker re-reading what its checkpoint
    already counted). Raises ShardFault (see the module docstring)."""
    from webdataset.tariterators import group_by_keys

    for item in shards:
        shard = item["url"]
        yielded = 0
        try:
            with open(shard, "rb") as raw:
                expected = checksums.get(shard)
                stream = _HashingReader(raw) if expected else raw
                for sample in group_by_keys(_files(stream, shard)):
                    yielded += 1
                    yield sample
                if expected and stream.rest_digest() != expected:
                    raise ShardFault(
                        shard, "its sha256 differs from its folder's manifest.json: the file changed after "
                        "the build; rebuild the folder or restore the file",
                    )  # fmt: skip
        except ShardFault:
            raise
        except Exception as error:  # truncated or not a tar at all: keep what it held
            if counting[0]:
                skips.skip(shard, f"unreadable shard data ({type(error).__name__}: {error})")
            if yielded == 0:
                raise ShardFault(
                    shard, f"yields no sample: {type(error).__name__}: {error} (is it a tar file of samples?)"
                ) from error
            continue
        if yielded == 0:
            raise ShardFault(shard, "holds no sample (an empty tar file)")
