"""Shard plumbing: range split, deterministic tar bytes, image encoding and its cache."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from PIL import Image

from coir.datasets.shards.images import ImageEncoder
from coir.datasets.shards.plan import num_shards_for, shard_samples, split_ranges, task_range
from coir.datasets.shards.writer import remove_stale_temps, tar_bytes, write_shard


def test_split_ranges_cover_every_shard_once():
    assert split_ranges(10, 3) == [range(0, 4), range(4, 7), range(7, 10)]
    for shards in (0, 1, 7, 100):
        for tasks in (1, 2, 3, 8, 150):
            ranges = split_ranges(shards, tasks)
            assert len(ranges) == tasks
            assert [i for r in ranges for i in r] == list(range(shards))
            assert max(map(len, ranges)) - min(map(len, ranges)) <= 1
    assert task_range(10, 2, 3) == range(7, 10)
    with pytest.raises(ValueError):
        task_range(10, 3, 3)
    assert num_shards_for(11, 5) == 3 and [len(s) for s in shard_samples(list(range(11)), 5)] == [5, 5, 1]


def test_tar_is_deterministic_and_webdataset_shaped(tmp_path):
    samples = [("a1", {"txt": b"hello", "json": b"{}"}), ("b2", {"txt": b"x" * 1000})]
    first = tar_bytes(samples)
    assert first == tar_bytes(samples)
    sha, size = write_shard(tmp_path / "s.tar", samples)
    assert (tmp_path / "s.tar").read_bytes() == first and size == len(first)
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["a1.txt", "a1.json", "b2.txt"]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in members} == {(0, 0, 0, "", "", 0o644)}
    with pytest.raises(ValueError, match="dots"):
        tar_bytes([("a.b", {"txt": b""})])


def test_failed_write_leaves_no_file_under_the_final_name(tmp_path):
    def samples():
        yield "a", {"txt": b"1"}
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_shard(tmp_path / "s.tar", samples())
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "s.tar.tmp-123").write_bytes(b"half")
    (tmp_path / "other.tar.tmp-1").write_bytes(b"half")
    assert remove_stale_temps(tmp_path, ["s.tar"]) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["other.tar.tmp-1"]


@pytest.mark.parametrize(("mode", "expected"), [("shorter", (64, 48)), ("longest", (48, 36))])
def test_resize_modes_never_enlarge(tmp_path, mode, expected):
    path = tmp_path / "x.jpg"
    Image.new("RGB", (400, 300), (10, 200, 30)).save(path)
    encoded = ImageEncoder(mode, 48, 90).encode(path)
    assert Image.open(io.BytesIO(encoded)).size == expected
    assert encoded == ImageEncoder(mode, 48, 90).encode(path)
    small = tmp_path / "small.png"
    Image.new("RGBA", (20, 10)).save(small)
    image = Image.open(io.BytesIO(ImageEncoder(mode, 48).encode(small)))
    assert image.size == (20, 10) and image.format == "JPEG" and image.mode == "RGB"


def _units(tmp_path: Path) -> tuple[list, list]:
    """Triplet units that share images across shards and a gallery unit; one image is missing."""
    from coir.datasets.shards.build import Unit
    from coir.datasets.shards.spec import SampleSpec

    for i in range(6):
        Image.new("RGB", (64, 48), (40 * i, 100, 200 - 30 * i)).save(tmp_path / f"img{i}.jpg")
    path = [str(tmp_path / f"img{i}.jpg") for i in range(7)]  # img6 does not exist

    def unit(kind, index, pairs):
        samples = tuple(
            SampleSpec(
                f"{kind}{index}_{n}", tuple((f"{k}.jpg", path[i]) for k, i in enumerate(p)), "t", {}, {}
            )
            for n, p in enumerate(pairs)
        )
        return Unit(str(tmp_path / kind), kind, index, samples)

    (tmp_path / "t").mkdir()
    (tmp_path / "g").mkdir()
    triplets = [unit("t", 0, [(0, 1), (1, 2), (2, 6)]), unit("t", 1, [(0, 3), (3, 4), (4, 0)])]
    triplets.append(unit("t", 2, [(5, 1), (1, 0), (2, 5)]))
    return triplets, [unit("g", 0, [(i,) for i in range(7)])]


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_each_distinct_image_is_encoded_once_and_the_shards_equal_the_per_reference_build(
    tmp_path: Path, workers: int, monkeypatch
) -> None:
    from coir.datasets.shards.build import run_units

    calls = tmp_path / "encode-calls.log"  # every encode, from whichever process made it
    real_encode = ImageEncoder.encode

    def logged_encode(self, path):
        with open(calls, "a") as log:
            log.write(f"{path}\n")
        return real_encode(self, path)

    monkeypatch.setattr(ImageEncoder, "encode", logged_encode)
    triplets, gallery = _units(tmp_path)
    encoder = ImageEncoder("square", 32)
    baseline = run_units([triplets, gallery], encoder, workers=1, scratch=None, progress=False)
    assert len(calls.read_text().splitlines()) == 25  # the baseline encodes every use
    calls.unlink()
    expected = {p.name: p.read_bytes() for p in tmp_path.rglob("*.tar")}
    for p in tmp_path.rglob("*.tar"):
        p.unlink()
    scratch = tmp_path / "_encoded" / "task-0"
    stats = run_units([triplets, gallery], encoder, workers=workers, scratch=scratch, progress=False)
    encoded = calls.read_text().splitlines()
    assert len(encoded) == len(set(encoded)) == 7  # each of the 7 distinct images once, in any worker
    assert stats["images_encoded"] == 7 and baseline["images_encoded"] == 25
    assert stats["images_reused"] == 18 and baseline["images_reused"] == 0
    assert stats["samples_skipped"] == baseline["samples_skipped"] == 2  # both samples with img6
    assert {p.name: p.read_bytes() for p in tmp_path.rglob("*.tar")} == expected
    assert not scratch.exists()  # the task's encoded images are gone
    scratch.mkdir()
    (scratch / "images-000.bin").write_bytes(b"left by a run killed after its last shard")
    assert (
        run_units([[], []], encoder, workers=workers, scratch=scratch, progress=False)["shards_written"] == 0
    )
    assert not scratch.exists()  # nothing to write, and the stale scratch is removed


def test_balanced_ranges_cut_contiguous_runs_of_about_equal_weight() -> None:
    from coir.datasets.shards.build import balanced_ranges

    assert balanced_ranges([100] * 10, 2) == [range(0, 5), range(5, 10)]
    assert balanced_ranges([100] * 9 + [50, 200, 200], 3) == [range(0, 5), range(5, 9), range(9, 12)]
    assert balanced_ranges([5], 4) == [range(0, 1)]
    ranges = balanced_ranges([3, 1, 4, 1, 5, 9, 2, 6], 3)
    assert [i for r in ranges for i in r] == list(range(8)) and len(ranges) == 3


def _tarfile_reference(samples) -> bytes:
    """What tarfile itself writes for the same members (PAX format, the writer's fixed fields)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for key, fields in samples:
            for field, data in fields.items():
                info = tarfile.TarInfo(f"{key}.{field}")
                info.size, info.mtime, info.mode, info.uid, info.gid = len(data), 0, 0o644, 0, 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_tar_bytes_equal_tarfile_for_every_kind_of_member():
    samples = [
        ("plain", {"txt": b"hello", "json": b"{}", "empty": b""}),
        ("block", {"bin": bytes(range(256)) * 2, "over": b"x" * 513}),  # exactly one block, just over
        ("k" * 120, {"txt": b"a name over 100 bytes needs a pax header"}),
        ("caf\u00e9_\u5199\u771f", {"txt": b"non-ASCII names too"}),
        ("big", {"jpg": bytes(300_000)}),
    ]
    for n in range(1, len(samples) + 1):  # every archive length, so the end padding varies
        assert tar_bytes(samples[:n]) == _tarfile_reference(samples[:n])
    with tarfile.open(fileobj=io.BytesIO(tar_bytes(samples))) as tar:
        assert tar.extractfile(f"{'k' * 120}.txt").read() == b"a name over 100 bytes needs a pax header"
