"""Shard plumbing: range split, deterministic tar bytes, image encoding and its cache."""

from __future__ import annotations

import io
import tarfile

import pytest
from PIL import Image

from coir.datasets.shards.images import EncodedImageCache, ImageEncoder, ImageProblem
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


def test_cache_encodes_each_image_once_and_remembers_problems(tmp_path):
    good = tmp_path / "good.jpg"
    Image.new("RGB", (64, 64), "red").save(good)
    cache = EncodedImageCache(ImageEncoder("shorter", 32), max_bytes=1 << 20)
    for _ in range(5):
        cache.get(good)
    for _ in range(3):
        with pytest.raises(ImageProblem) as problem:
            cache.get(tmp_path / "missing.jpg")
        assert problem.value.reason == "missing_image"
    assert cache.encoded == 2 and cache.hits == 6
    tiny = EncodedImageCache(ImageEncoder("shorter", 32), max_bytes=1)
    tiny.get(good)
    other = tmp_path / "other.jpg"
    Image.new("RGB", (64, 64), "blue").save(other)
    tiny.get(other)
    tiny.get(good)
    assert tiny.encoded == 3  # evicted: bounded memory wins over reuse


def test_workers_get_the_gallery_units_whose_images_they_already_need():
    from coir.datasets.shards.build import Unit, assign_workers
    from coir.datasets.shards.spec import SampleSpec

    def unit(kind, index, images):
        samples = tuple(
            SampleSpec(f"{kind}{index}_{i}", tuple(("jpg", p) for p in im), None, {}, {})
            for i, im in enumerate(images)
        )
        return Unit("/x", kind, index, samples)

    triplets = [unit("t", i, [(f"img{2 * i:03d}", f"img{2 * i + 1:03d}")]) for i in range(8)]
    gallery = [unit("g", i, [(f"img{4 * i + j:03d}",) for j in range(4)]) for i in range(3, -1, -1)]
    per_worker = assign_workers([triplets, gallery], 2)
    assert [[u.index for u in units if u.kind == "t"] for units in per_worker] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert [[u.index for u in units if u.kind == "g"] for units in per_worker] == [[0, 1], [2, 3]]
    assert [u.kind for u in per_worker[0]][:2] == ["t", "g"]  # ordered by first image: interleaved
    only_gallery = assign_workers([[], gallery], 2)
    assert sorted(len(units) for units in only_gallery) == [2, 2]


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
