"""Provenance cards: a training run writes coir_card.json beside its checkpoints and its export (config,
code commit, shard manifest checksums, tokenizer sha256, steps and samples); `coir info` prints it."""

from __future__ import annotations

import hashlib
import json
import subprocess

from coir.pipeline.cli import main
from tests.test_train_support import (
    REPO,
    child_env,
    make_tokenizer,
    train_command,
    write_recipe,
    write_shards,
)


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_training_run_cards_its_checkpoints_and_export(tmp_path, capsys):
    shards = write_shards(tmp_path / "shards", shards=2, per_shard=16)  # with its manifest.json
    tokenizer = make_tokenizer(tmp_path / "tok")
    recipe = write_recipe(
        tmp_path,
        tmp_path / "shards",
        tokenizer,
        **{"optim.total_steps": 4, "checkpoint.every_steps": 2, "name": "my-case", "data.num_workers": 0},
    )
    done = subprocess.run(
        train_command(recipe), env=child_env(), cwd=str(REPO), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "run"
    card = json.loads((run / "export" / "coir_card.json").read_text())
    assert card["kind"] == "export" and card["model_name"] == "my-case"
    assert card["training"]["step"] == 4 and card["training"]["samples_seen"] == 4 * 8
    assert card["config"]["optim"]["total_steps"] == 4 and card["config"]["model"]["tokenizer"] == str(
        tokenizer
    )
    [data] = card["data"]
    assert data["manifest"]["sha256"] == sha256(tmp_path / "shards" / "manifest.json")
    assert {name: s["sha256"] for name, s in data["shards"].items()} == {p.name: sha256(p) for p in shards}
    tok_files = card["sources"]["model.tokenizer"]["files"]
    assert tok_files["tokenizer.json"]["sha256"] == sha256(tokenizer / "tokenizer.json")
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    assert card["code"]["git_commit"] == head
    # each checkpoint carries its own step
    step2 = json.loads((run / "checkpoints" / "step_00000002" / "coir_card.json").read_text())
    assert step2["kind"] == "checkpoint" and step2["training"]["step"] == 2
    # coir info: the export's card, and a checkpoint folder's newest one
    assert main(["info", str(run / "export")]) == 0
    assert json.loads(capsys.readouterr().out) == card
    assert main(["info", str(run / "checkpoints"), "--key", "training"]) == 0
    assert json.loads(capsys.readouterr().out)["step"] == 4
    assert main(["info", str(tmp_path / "shards")]) == 2
    assert "coir_card.json" in capsys.readouterr().err
