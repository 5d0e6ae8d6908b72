"""Every distinct source image of a build encoded once, split evenly over the workers, before any shard.

Phase 1 of writing a task's shards (datasets/shards/build.py): the distinct image paths its samples use,
in plan order, are cut into one contiguous part per worker; each worker decodes, resizes and encodes its
part (ImageEncoder) and appends the bytes to its own file in a scratch folder, and the index (path ->
file, offset, length, or the ImageProblem) comes back to the parent. Phase 2 writes the shards, each
image's bytes read back from the scratch files (the page cache has them). So an image used by many
samples is encoded exactly once per task, however those samples are spread over shards and workers, in
no more memory than the index (a cache bounded in bytes re-encodes what it evicted: at LaSCo's scale,
121,479 images of ~40 KB, a 512 MiB cache holds a tenth), and each worker encodes the same number of
images whatever the shards share. The scratch folder takes about the size of the images once (~5 GB for
LaSCo train at 384 px) and is removed when the task ends or fails (finalizing a build removes any a
killed task left).

`ReencodedImages` is the per-reference alternative (no phase 1, every sample's images encoded again):
the baseline of benchmarks/build_shards.py, which gives the same bytes.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from coir.common.errors import DISK_FULL_ERRNOS, CoirError, DiskFullError
from coir.datasets.shards.images import ImageEncoder, ImageProblem
from coir.datasets.shards.plan import split_ranges

SCRATCH = "_encoded"  # phase 1's folder (one folder per task inside) next to a build's set folders
REPORT_EVERY = 64  # images per progress message from a worker
Entry = tuple[int, int, int] | tuple[str, str, str]  # (file, offset, length) or ImageProblem's fields


class EncodedImages:
    """The encoded bytes of each distinct image (or its problem), from the scratch files."""

    def __init__(self, folder: Path, index: dict[str, Entry]) -> None:
        self.folder = folder
        self.index = index
        self._files: dict[int, int] = {}  # file number -> descriptor (opened in the process that reads)
        self._pid = os.getpid()

    def get(self, path: str) -> bytes:
        entry = self.index[path]
        if isinstance(entry[0], str):
            raise ImageProblem(*entry)  # type: ignore[misc]
        number, offset, length = entry
        if self._pid != os.getpid():  # a forked writer: its own descriptors
            self._files, self._pid = {}, os.getpid()
        if number not in self._files:
            self._files[number] = os.open(scratch_file(self.folder, int(number)), os.O_RDONLY)
        data = os.pread(self._files[number], int(length), int(offset))
        if len(data) != length:  # the scratch file changed under the build (the task run twice at once?)
            raise CoirError(
                f"{scratch_file(self.folder, int(number))}: {len(data)} bytes at {offset} where the image "
                f"{path} was written with {length}; rerun the task alone"
            )
        return data

    def close(self) -> None:
        for descriptor in self._files.values():
            os.close(descriptor)
        self._files = {}

    def remove(self) -> None:
        """Close and delete the scratch folder."""
        self.close()
        drop_scratch(self.folder)


class ReencodedImages:
    """Each request encodes the image again (the per-reference baseline: no phase 1, no scratch)."""

    def __init__(self, encoder: ImageEncoder) -> None:
        self.encoder = encoder

    def get(self, path: str) -> bytes:
        return self.encoder.encode(path)

    def remove(self) -> None:
        pass


def scratch_file(folder: Path, number: int) -> Path:
    return folder / f"images-{number:03d}.bin"


def new_scratch(folder: Path) -> None:
    """An empty scratch folder for a task (a stopped run's removed: its index is gone with it). The
    parent is shared by the tasks of the build and left to `remove_all_scratch` at finalize."""
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder, exist_ok=True)


def drop_scratch(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def remove_all_scratch(out: Path) -> None:
    """Finalize's sweep: every task is done, so any scratch folder left is a killed task's."""
    shutil.rmtree(Path(out) / SCRATCH, ignore_errors=True)


def distinct_paths(path_lists: Iterator[list[str]]) -> list[str]:
    """Every path once, in order of first use."""
    seen: dict[str, None] = {}
    for paths in path_lists:
        for path in paths:
            seen.setdefault(path, None)
    return list(seen)


def parts(paths: list[str], workers: int) -> list[list[str]]:
    """Contiguous parts of `paths`, sizes differing by at most one (empty parts dropped)."""
    return [paths[r.start : r.stop] for r in split_ranges(len(paths), workers) if len(r)]


def encode_part(paths: list[str], encoder: ImageEncoder, folder: Path, number: int) -> Iterator[list]:
    """Encode `paths` into scratch file `number`; yields the index entries [(path, entry)] in groups of
    REPORT_EVERY. A full disk is a DiskFullError naming the scratch file."""
    target = scratch_file(folder, number)
    offset = 0
    done: list[tuple[str, Entry]] = []
    try:
        with open(target, "wb") as sink:
            for path in paths:
                try:
                    data = encoder.encode(path)
                except ImageProblem as problem:
                    done.append((path, (problem.reason, str(problem), problem.path)))
                else:
                    sink.write(data)
                    done.append((path, (number, offset, len(data))))
                    offset += len(data)
                if len(done) >= REPORT_EVERY:
                    yield done
                    done = []
    except OSError as error:
        if error.errno in DISK_FULL_ERRNOS:
            raise DiskFullError(target, "free space and rerun the same command: it resumes") from error
        raise
    if done:
        yield done
