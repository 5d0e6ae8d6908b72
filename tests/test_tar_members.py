"""The loader's tar reader gives the members tarfile gives, for every tar format, and fails loudly."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from coir.common.tar_members import TarReadError, tar_members


def _reference(path: Path) -> list[tuple[str, bytes]]:
    """What tarfile reads: regular files, webdataset's top-level `__x__` metadata members left out."""
    members = []
    with tarfile.open(path, "r:*") as tar:
        for info in tar:
            top_meta = "/" not in info.name and info.name.startswith("__") and info.name.endswith("__")
            if info.isreg() and not top_meta:
                members.append((info.name, tar.extractfile(info).read()))
    return members


def _members(path: Path) -> list[tuple[str, bytes]]:
    with open(path, "rb") as stream:
        return list(tar_members(stream))


def _add(tar: tarfile.TarFile, name: str, data: bytes, kind: bytes = tarfile.REGTYPE) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    if kind == tarfile.SYMTYPE:
        info.linkname = "a.jpg"
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def _mixed(path: Path, fmt: int, mode: str = "w") -> Path:
    """Short, long, nested and non-ASCII names, empty and block-sized files, a directory, a link and
    a metadata member."""
    rng = os.urandom
    with tarfile.open(path, mode, format=fmt) as tar:
        _add(tar, "a.jpg", rng(1000))
        _add(tar, "a.txt", b"is red now")
        _add(tar, "empty.json", b"")
        _add(tar, "dir", b"", tarfile.DIRTYPE)
        _add(tar, "link.jpg", b"", tarfile.SYMTYPE)
        _add(tar, "__meta__", b"{}")
        _add(tar, "nested/deeper/b.jpg", rng(512))
        _add(tar, "p" * 90 + "/" + "q" * 60 + ".txt", b"prefix")  # fits a ustar prefix + name
        if fmt != tarfile.USTAR_FORMAT:
            _add(tar, "x" * 150 + ".jpg", rng(3000))  # over ustar's 100 bytes without a slash
            _add(tar, "caf\u00e9-\u00fc.jpg", rng(700))
    return path


@pytest.mark.parametrize(
    ("fmt", "mode"),
    [
        (tarfile.USTAR_FORMAT, "w"),
        (tarfile.GNU_FORMAT, "w"),
        (tarfile.PAX_FORMAT, "w"),
        (tarfile.PAX_FORMAT, "w:gz"),
        (tarfile.GNU_FORMAT, "w:bz2"),
        (tarfile.PAX_FORMAT, "w:xz"),
    ],
)
def test_every_format_gives_what_tarfile_gives(tmp_path, fmt, mode):
    path = _mixed(tmp_path / "mixed.tar", fmt, mode)
    expected = _reference(path)
    assert len(expected) >= (5 if fmt == tarfile.USTAR_FORMAT else 7)
    assert _members(path) == expected


def test_coir_shards_give_what_tarfile_gives(tmp_path):
    from coir.datasets.shards.writer import write_shard

    samples = [
        (f"k{i:04d}", {"query.jpg": os.urandom(100 + i), "txt": f"caption {i}".encode(), "json": b"{}"})
        for i in range(20)
    ]
    samples.append(("n\u00e4me-" + "y" * 120, {"txt": b"a pax name"}))
    path = tmp_path / "shard.tar"
    write_shard(path, iter(samples))
    assert _members(path) == _reference(path)
    assert len(_members(path)) == 61


def test_damage_is_an_error_naming_where(tmp_path):
    path = _mixed(tmp_path / "ok.tar", tarfile.PAX_FORMAT)
    data = path.read_bytes()
    with pytest.raises(TarReadError, match="unexpected end of data in a member at byte 512"):
        list(tar_members(io.BytesIO(data[:900])))
    with pytest.raises(TarReadError, match="truncated header at byte 1536"):
        list(tar_members(io.BytesIO(data[:1600])))
    damaged = bytearray(data)
    damaged[1536 + 10] ^= 0xFF  # the second member's name: its checksum no longer matches
    with pytest.raises(TarReadError, match="bad header checksum at byte 1536"):
        list(tar_members(io.BytesIO(bytes(damaged))))
    with pytest.raises(TarReadError, match="at byte 0"):
        list(tar_members(io.BytesIO(os.urandom(4096))))
    assert list(tar_members(io.BytesIO(b""))) == []
    assert list(tar_members(io.BytesIO(bytes(1024)))) == []  # only the end-of-archive blocks
