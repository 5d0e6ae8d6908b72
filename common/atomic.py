"""Atomic file and folder writes: a temp name beside the destination, renamed when complete.

A reader (or a rerun after a crash) sees the old content or the new one, never half of either;
on any exception the temp file or folder is removed. A full disk (or quota) becomes a DiskFullError
naming the destination file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from coir.common.errors import DISK_FULL_ERRNOS, DiskFullError


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path, *, fsync: bool = True, temp_name: str | None = None) -> Iterator[Path]:
    """Yield a temp path in `path`'s folder to write to; when the block ends it replaces `path`.

    fsync: flush the data to disk before the rename (off for many small, regenerable files).
    temp_name: the temp file's name (default: a unique hidden name), for writers whose resume
    logic recognises their own temp files.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if temp_name is None:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
    else:
        tmp = path.parent / temp_name
    try:
        yield tmp
        if fsync:
            _fsync(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        if error.errno in DISK_FULL_ERRNOS and not isinstance(error, DiskFullError):
            raise DiskFullError(path) from error
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes, *, fsync: bool = True) -> Path:
    """Write `data` to `path` atomically (see atomic_path)."""
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str, *, fsync: bool = True) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"), fsync=fsync)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty staging folder beside `path`; when the block ends it takes `path`'s place.

    An existing folder at `path` is moved aside first and deleted once the new one is in place.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield staging
        if path.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, trash / path.name)
            os.replace(staging, path)
            shutil.rmtree(trash)
        else:
            os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
