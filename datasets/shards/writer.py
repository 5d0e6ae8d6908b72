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


BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE
# the fixed part of every header: mode 0644, uid 0, gid 0 (size, mtime 0 and name are per member)
_MODE_IDS = b"0000644\0" + b"0000000\0" * 2
_AFTER_MTIME = b"00000000000\0"  # mtime 0, then the checksum field (filled below)
_TAIL = tarfile.REGTYPE + bytes(100) + tarfile.POSIX_MAGIC + bytes(32 + 32 + 8 + 8 + 155 + 12)
_FIXED_SUM = sum(b"        " + _TAIL)  # the checksum counts its own field as eight spaces


def _header(name: str, size: int) -> bytes:
    """The ustar header tarfile writes in PAX format for a regular file with our fixed fields, built
    directly (tarfile's TarInfo.tobuf costs more than the whole rest of a shard's writing). Names that
    ustar cannot hold (non-ASCII, over 100 bytes) and sizes over 8 GiB go through tarfile (a pax
    header first)."""
    encoded = name.encode("ascii") if name.isascii() else b""
    if not encoded or len(encoded) > 100 or size >= 8**11:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode, info.type = size, 0, 0o644, tarfile.REGTYPE
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    head = encoded.ljust(100, b"\0") + _MODE_IDS + b"%011o\0" % size + _AFTER_MTIME
    return head + b"%06o\0 " % (sum(head) + _FIXED_SUM) + _TAIL


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
    """(key, {field: bytes}) samples as tar members `<key>.<field>`, fields in the given order; the
    bytes are those of tarfile in PAX format with mtime 0, mode 0644, uid/gid 0 and empty names."""
    offset = 0
    for key, fields in samples:
        check_key(key)
        for field, data in fields.items():
            header = _header(f"{key}.{field}", len(data))
            padding = -len(data) % BLOCK
            fileobj.write(b"".join((header, data, bytes(padding))))  # one write: one hash update
            offset += len(header) + len(data) + padding
    offset += 2 * BLOCK
    fileobj.write(bytes(2 * BLOCK + -offset % RECORD))


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
