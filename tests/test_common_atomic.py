"""coir.common.atomic: a write either lands whole or leaves the old content and no temp file."""

from __future__ import annotations

import pytest

from coir.common.atomic import atomic_dir, atomic_path, write_bytes_atomic


def test_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "a.bin"
    write_bytes_atomic(target, b"one")
    write_bytes_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.bin"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)


def test_failed_write_keeps_old_content(tmp_path):
    target = tmp_path / "a.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_named_temp_file(tmp_path):
    with atomic_path(tmp_path / "x.tar", temp_name="x.tar.part") as tmp:
        assert tmp == tmp_path / "x.tar.part"
        tmp.write_bytes(b"tar")
    assert (tmp_path / "x.tar").read_bytes() == b"tar" and not tmp.exists()


def test_atomic_dir_swaps_whole_folder(tmp_path):
    dest = tmp_path / "tok"
    with atomic_dir(dest) as staging:
        (staging / "old.txt").write_text("1")
    with atomic_dir(dest) as staging:
        (staging / "new.txt").write_text("2")
    assert [p.name for p in dest.iterdir()] == ["new.txt"]
    with pytest.raises(ValueError), atomic_dir(dest) as staging:
        (staging / "broken.txt").write_text("3")
        raise ValueError("fail")
    assert [p.name for p in dest.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tok"]
