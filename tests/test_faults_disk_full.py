"""A full disk while writing shards: a clear error naming the file and saying a rerun resumes (no
traceback, nothing half-written under a final name), and the rerun after freeing space gives the same
bytes as a build that never ran out of space. The full disk is simulated: the shard writer's write
raises OSError(ENOSPC) once it has written a budget of bytes, as a filling disk would."""

from __future__ import annotations

import errno
import io
import json
from pathlib import Path

import pytest
from lasco_fixture import folder_bytes, run_command
from PIL import Image

from coir.common.atomic import write_bytes_atomic
from coir.common.errors import DiskFullError
from coir.datasets.shards import writer

SHARDS = "coir.datasets.shards.cli"


@pytest.fixture(scope="module")
def custom_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("custom")
    images = root / "images"
    images.mkdir()
    for i in range(8):
        Image.new("RGB", (40, 30), (30 * i, 90, 240 - 30 * i)).save(images / f"i{i}.jpg")
    lines = [
        json.dumps({"reference": f"i{i}.jpg", "text": f"change {i}", "target": f"i{(i + 3) % 8}.jpg"})
        for i in range(8)
    ]
    (root / "triplets.jsonl").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def expected(custom_inputs, tmp_path_factory) -> dict:
    """The files of a build that never ran out of space."""
    clean = tmp_path_factory.mktemp("clean") / "out"
    assert run_command(SHARDS, _argv(custom_inputs, clean, 1)) == 0
    return folder_bytes(clean)


def _argv(inputs, out, workers: int) -> list[str]:
    return [
        "custom", "--triplets", str(inputs / "triplets.jsonl"), "--images", str(inputs / "images"),
        "--out", str(out), "--size", "32", "--shard-size", "2", "--workers", str(workers), "--no-progress",
    ]  # fmt: skip


def _disk_fills_after(monkeypatch, budget: int) -> None:
    """Every process (forked workers inherit it) may write `budget` shard bytes, then gets ENOSPC."""
    written = [0]
    real_write = writer._HashingFile.write

    def write(self, data) -> int:
        written[0] += len(data)
        if written[0] > budget:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(writer._HashingFile, "write", write)


@pytest.mark.parametrize("workers", [1, 2])
def test_full_disk_names_the_file_and_the_rerun_resumes(
    custom_inputs, expected, tmp_path, monkeypatch, capsys, workers
):

    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        _disk_fills_after(
            patch, budget=45_000
        )  # two shards of 20-30 kB fit per process, then the disk is full
        assert run_command(SHARDS, _argv(custom_inputs, out, workers)) == 2
    err = capsys.readouterr().err
    assert err.startswith("coir: error: ") and "Traceback" not in err, err
    assert "no space left" in err and "rerun the same command" in err and "resumes" in err
    named = err.split("coir: error: ")[1].split(": could not be written")[0]
    assert named.startswith(str(out)) and named.endswith(".tar"), named
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.tar"))
    assert 0 < len(written) < sum(1 for name in expected if name.endswith(".tar"))
    assert not (out / "triplets" / "manifest.json").exists()
    # the failed shard's temp file is gone (another worker, stopped mid-shard, may leave its own: the
    # rerun removes it), and every shard under a final name is whole
    assert not [p for p in out.rglob("*") if p.name.startswith(Path(named).name + writer.TMP_MARK)]
    for name in written:
        assert (out / name).read_bytes() == expected[name], name

    assert run_command(SHARDS, _argv(custom_inputs, out, workers)) == 0  # space freed: the same command
    assert folder_bytes(out) == expected


def test_any_atomic_write_names_its_file_on_a_full_disk(tmp_path, monkeypatch):
    def no_space(self, data) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(type(tmp_path), "write_bytes", no_space)
    with pytest.raises(DiskFullError, match="manifest.json: could not be written"):
        write_bytes_atomic(tmp_path / "manifest.json", b"{}")
    assert list(tmp_path.iterdir()) == []  # the temp file is gone


@pytest.mark.parametrize("workers", [1, 2])
def test_full_disk_while_encoding_the_images_names_the_scratch_file_and_the_rerun_resumes(
    custom_inputs, expected, tmp_path, monkeypatch, capsys, workers
):
    from coir.datasets.shards import encoded_images

    class FillingFile(io.FileIO):
        def write(self, data) -> int:
            if self.tell() + len(data) > 1_000:  # a scratch file of more than 1 kB does not fit
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().write(data)

    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        patch.setattr(encoded_images, "open", lambda path, mode: FillingFile(path, "wb"), raising=False)
        assert run_command(SHARDS, _argv(custom_inputs, out, workers)) == 2
    err = capsys.readouterr().err
    assert err.startswith("coir: error: ") and "Traceback" not in err, err
    assert "_encoded" in err and ".bin: could not be written: no space left" in err and "rerun" in err
    assert not list(out.rglob("*.tar"))  # no shard is written before every image is encoded
    assert run_command(SHARDS, _argv(custom_inputs, out, workers)) == 0  # space freed: the same command
    assert folder_bytes(out) == expected
