"""`coir data inspect`: summary, sha256 verification (detects a corrupted shard), samples, contact sheet."""

from __future__ import annotations

import pytest
from lasco_fixture import make_vqa_world, run_command
from PIL import Image

INSPECT = "coir.datasets.shards.inspect_cli"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("inspect")
    world = make_vqa_world(root / "world", n_images=8)
    out = root / "out"
    args = [
        "--vqa",
        str(world.vqa),
        "--coco",
        str(world.coco),
        "--out",
        str(out),
        "--shard-size",
        "3",
        "--size",
        "40",
        "--no-progress",
    ]
    assert run_command("coir.datasets.lasco.cli", args) == 0
    return out


def test_inspect_verifies_and_draws_a_contact_sheet(built, tmp_path, capsys):
    sheet = tmp_path / "sheet.png"
    assert run_command(INSPECT, [str(built), "--samples", "2", "--contact-sheet", str(sheet)]) == 0
    out = capsys.readouterr().out
    assert "verified sha256" in out and "OK" in out and "CORRUPT" not in out
    assert "triplets of lasco val" in out and "gallery of lasco val" in out
    assert "txt='" in out and "query.jpg=" in out
    image = Image.open(sheet)
    assert image.format == "PNG" and image.height >= 4 * 40  # 2 triplet rows + 2 gallery rows


def test_inspect_detects_a_corrupted_shard(built, capsys):
    shard = built / "triplets" / "triplets-000001.tar"
    original = shard.read_bytes()
    try:
        corrupted = bytearray(original)
        corrupted[700] ^= 0xFF
        shard.write_bytes(bytes(corrupted))
        assert run_command(INSPECT, [str(built / "triplets"), "--samples", "0"]) == 1
        captured = capsys.readouterr()
        assert "CORRUPT" in captured.out and "triplets-000001.tar: sha256 mismatch" in captured.out
        assert "coir: error" in captured.err
        shard.unlink()
        assert run_command(INSPECT, [str(built / "triplets"), "--samples", "0"]) == 1
        assert "triplets-000001.tar: missing" in capsys.readouterr().out
    finally:
        shard.write_bytes(original)


def test_inspect_on_a_folder_without_manifest(tmp_path, capsys):
    assert run_command(INSPECT, [str(tmp_path)]) == 2
    assert "manifest" in capsys.readouterr().err


def test_inspect_reports_a_truncated_shard_without_a_traceback(built, capsys):
    shard = built / "triplets" / "triplets-000000.tar"
    original = shard.read_bytes()
    try:
        cut = len(original.rstrip(b"\0")) // 2  # half of what the shard holds (not of its zero padding)
        shard.write_bytes(original[:cut])  # a copy that stopped half-way
        assert run_command(INSPECT, [str(built / "triplets"), "--samples", "5"]) == 1
        captured = capsys.readouterr()
        lines = [line for line in captured.out.splitlines() if "CORRUPT" in line]
        assert len(lines) == 2 and all("triplets-000000.tar" in line for line in lines), captured.out
        assert f"size {cut} != {len(original)}" in lines[0]
        assert "unreadable (TarReadError: unexpected end of data in a member at byte" in lines[1]
        assert "Traceback" not in captured.out + captured.err and "coir: error" in captured.err
    finally:
        shard.write_bytes(original)
