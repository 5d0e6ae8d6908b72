"""kill -9 in the middle of a checkpoint save and of an export (the shard build: test_lasco_kill.py).

A checkpoint killed while DeepSpeed writes its files, or with every file but trainer.json written, is
never resumed from: `--resume auto` continues from the one before and ends with the same weights as a
run never killed. An export killed at any point over an earlier export is refused as incomplete (never
a mix of the two), and writing it again gives the files of an export never killed.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_train_support import (
    REPO,
    child_env,
    export_state,
    make_tokenizer,
    train_command,
    write_recipe,
    write_shards,
)

from coir.common.errors import MissingInputError
from coir.pipeline import checkpoint
from coir.pipeline.models.export import load_export

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import kill_points  # noqa: E402


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("kill")
    write_shards(folder / "shards", shards=2, per_shard=16)
    return folder / "shards", make_tokenizer(folder / "tok")


def _run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, env=child_env(), cwd=str(REPO), capture_output=True, text=True, timeout=300
    )


def _recipe(tmp: Path, inputs: tuple[Path, Path]) -> Path:
    tmp.mkdir()
    overrides = {"optim.total_steps": 4, "checkpoint.every_steps": 2, "checkpoint.keep_last": 1}
    return write_recipe(tmp, inputs[0], inputs[1], **overrides, **{"data.num_workers": 0})


def test_checkpoint_save_killed_resumes_exactly(tmp_path: Path, inputs) -> None:
    reference = _recipe(tmp_path / "reference", inputs)
    done = _run(train_command(reference))
    assert done.returncode == 0, done.stderr[-3000:]
    expected = export_state(tmp_path / "reference" / "run" / "export")
    # the save at step 4: 1 DeepSpeed's model file, 2 its optimizer file (left half-written), 3 the rank
    # file, 4 the card, 5 trainer.json (each an atomic rename), 6 pruning step 2
    for kill_at in (2, 5):
        recipe = _recipe(tmp_path / f"killed_{kill_at}", inputs)
        killed = _run(
            [sys.executable, str(HERE / "kill_points.py"), "train", "--kill-at", str(kill_at), "4"]
            + [str(recipe)]
        )
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
        folder = recipe.parent / "run" / "checkpoints"
        assert (folder / checkpoint.tag_of(4)).is_dir() and not (
            folder / checkpoint.tag_of(4) / "trainer.json"
        ).exists()
        assert checkpoint.newest(folder) == folder / checkpoint.tag_of(2)
        resumed = _run(train_command(recipe, "--resume", "auto"))
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert "resumed from" in resumed.stdout + resumed.stderr
        assert checkpoint.complete(folder) == [folder / checkpoint.tag_of(4)]
        state = export_state(recipe.parent / "run" / "export")
        assert state.keys() == expected.keys()
        assert all(torch.equal(state[k], expected[k]) for k in expected), f"kill at {kill_at}: weights differ"


def _export_files(folder: Path) -> dict[str, bytes]:
    """The files that make an export (temp files a killed writer left, and the card's time, aside)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and p.name != "coir_card.json"
    }


def test_export_killed_over_an_earlier_one_is_never_taken_for_complete(tmp_path: Path, inputs) -> None:
    tokenizer = str(inputs[1])
    kill_points.export(tokenizer, str(tmp_path / "clean_b"), 2, kill_points.KillAt(0))
    clean_b = _export_files(tmp_path / "clean_b")
    kill_points.export(tokenizer, str(tmp_path / "a"), 1, kill_points.KillAt(0))
    model_a = export_state(tmp_path / "a")
    # over an earlier export: 1 the weights, 2 and 3 the tokenizer folder swap, 4 the card, 5 coir_model.json
    for kill_at in (1, 3, 5):
        out = tmp_path / f"export_{kill_at}"
        kill_points.export(tokenizer, str(out), 1, kill_points.KillAt(0))
        killed = _run(
            [
                sys.executable,
                str(HERE / "kill_points.py"),
                "export",
                "--kill-at",
                str(kill_at),
                tokenizer,
                str(out),
                "2",
            ]
        )
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
        try:
            loaded = load_export(out)
        except MissingInputError as refused:
            assert "coir_model.json" in str(refused)
        else:  # complete only if it is still wholly the earlier export
            weights = {k: v for k, v in loaded.state_dict().items() if k in model_a}
            assert all(torch.equal(weights[k], model_a[k]) for k in model_a), f"kill at {kill_at}: a mix"
        kill_points.export(tokenizer, str(out), 2, kill_points.KillAt(0))  # written again
        assert _export_files(out) == clean_b
