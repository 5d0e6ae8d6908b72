"""Deterministic, atomic tar shards in the WebDataset layout (`<key>.<field>` members).

Every header field that could vary between runs (mtime, uid, gid, user and group names, mode) is
fixed, so the same samples always give the same bytes. A shard is written under a temporary name
in its own folder and renamed when complete: a file with a final shard name is always whole. A full
disk stops the writer with a DiskFullError naming the file and saying that a rerun resumes.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from coir.common.atomic import atomic_path
from coir.common.errors import DiskFullError

TMP_MARK = ".tmp-"
RESUME_NOTE = (
    "nothing half-written was kept and the shards already finished stay: free space and rerun the same "
    "command, it resumes with the missing shards"
)


def _member(name: str, data: bytes) -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info, io.BytesIO(data)


def check_key(key: str) -> str:
    if not key or "." in key or "/" in key:
        raise ValueError(f"invalid sample key {key!r}: must be non-empty, without dots or slashes")
    return key


class _HashingFile(io.RawIOBase):
    """A write-only file that hashes and counts what passes through it."""

    def __init__(self, raw) -> None:
        self.raw, self.sha, self.size = raw, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.size

    def write(self, data) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.raw.write(data)


def write_tar(fileobj, samples: Iterable[tuple[str, Mapping[str, bytes]]]) -> None:
    """(key, {field: bytes}) samples as tar members `<key>.<field>`, fields in the given order."""
    with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for key, fields in samples:
            check_key(key)
            for field, data in fields.items():
                tar.addfile(*_member(f"{key}.{field}", data))


def tar_bytes(samples: Iterable[tuple[str, Mapping[str, bytes]]]) -> bytes:
    buffer = io.BytesIO()
    write_tar(buffer, samples)
    return buffer.getvalue()


def write_shard(
    path: str | Path,
    samples: Iterable[tuple[str, Mapping[str, bytes]]],
    before_rename: Callable[[str, int], None] | None = None,
) -> tuple[str, int]:
    """Stream a shard to a temp file beside `path`, then os.replace it; returns (sha256, size).

    `before_rename(sha256, size)` runs once the temp file is complete, before it takes its name.
    """
    path = Path(path)
    try:
        with atomic_path(path, temp_name=f"{path.name}{TMP_MARK}{os.getpid()}") as tmp:
            with open(tmp, "wb") as raw:
                hashing = _HashingFile(raw)
                write_tar(hashing, samples)
            if before_rename is not None:
                before_rename(hashing.sha.hexdigest(), hashing.size)
    except DiskFullError as error:
        raise DiskFullError(error.path, RESUME_NOTE) from error.__cause__
    return hashing.sha.hexdigest(), hashing.size


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def remove_stale_temps(folder: Path, names: Iterable[str]) -> int:
    """Delete temp files left by a killed writer for the given final names; returns how many."""
    wanted = set(names)
    removed = 0
    for item in folder.glob(f"*{TMP_MARK}*"):
        if item.name.split(TMP_MARK)[0] in wanted:
            item.unlink(missing_ok=True)
            removed += 1
    return removed
