"""A build killed with SIGKILL part-way, then rerun with the same arguments, gives the same bytes
as a clean build; a file under a final shard name is never partial."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lasco_fixture import folder_bytes, make_vqa_world, run_command

HERE = Path(__file__).resolve().parent
LASCO = "coir.datasets.lasco.cli"


def shard_files(out: Path) -> list[Path]:
    return [p for folder in ("triplets", "gallery") for p in (out / folder).glob(f"{folder}-*.tar")]


def start_and_kill_after(args: list[str], out: Path, shards: int, timeout: float = 60) -> int:
    """Run the CLI in its own process group, SIGKILL the whole group once `shards` shards exist."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, str(HERE / "lasco_fixture.py"), LASCO, *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if len(shard_files(out)) >= shards:
                os.killpg(process.pid, signal.SIGKILL)
                break
            time.sleep(0.005)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    return len(shard_files(out))


def test_killed_build_resumes_to_identical_bytes(tmp_path):
    world = make_vqa_world(tmp_path / "world", n_images=60, size=(320, 240))

    def args(out: Path, *extra: str) -> list[str]:
        return [
            "--vqa",
            str(world.vqa),
            "--coco",
            str(world.coco),
            "--out",
            str(out),
            "--split",
            "val",
            "--shard-size",
            "2",
            "--size",
            "96",
            "--no-progress",
            *extra,
        ]

    clean = tmp_path / "clean"
    assert run_command(LASCO, args(clean)) == 0
    expected = folder_bytes(clean)
    total = len(shard_files(clean))
    assert total > 60

    out = tmp_path / "killed"
    kills = 0
    for target in (3, total // 2):
        found = start_and_kill_after(args(out, "--workers", "2"), out, target)
        if found < total:
            kills += 1
        # whatever exists under a final shard name is whole: byte-identical to the clean build's shard
        for path in shard_files(out):
            assert path.read_bytes() == expected[str(path.relative_to(out))], path
    if kills == 0:
        pytest.fail("the build finished before it could be killed; make the fixture larger")
    assert not (out / "triplets" / "manifest.json").exists()

    assert run_command(LASCO, args(out, "--workers", "2")) == 0
    assert folder_bytes(out) == expected
