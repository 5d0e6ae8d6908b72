"""`coir data vocab` end to end on the real FashionIQ / CIRR val captions."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from coir.datasets.records import FASHIONIQ_CATEGORIES
from coir.datasets.vocab import Vocabulary, build_vocabulary
from coir.pipeline.cli import main


def test_default_reads_the_training_captions(
    real_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the val captions copied in as training files: the command's default split is train
    root = tmp_path / "fashioniq"
    (root / "captions").mkdir(parents=True)
    for category in FASHIONIQ_CATEGORIES:
        shutil.copy(
            real_data / "fashioniq" / "captions" / f"cap.{category}.val.json",
            root / "captions" / f"cap.{category}.train.json",
        )
    out = tmp_path / "vocab" / "fashioniq.json"
    assert main(["data", "vocab", "--dataset", "fashioniq", "--root", str(root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2,122 entries = 2,117 words + 5 special tokens" in printed
    assert "12,032 train captions" in printed and str(out) in printed
    assert Vocabulary.load(out) == build_vocabulary("fashioniq", real_data / "fashioniq", "val")


def test_split_option_and_cirr(real_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cirr.json"
    argv = ["data", "vocab", "--dataset", "cirr", "--root", str(real_data / "cirr"), "--out", str(out)]
    assert main([*argv, "--split", "val"]) == 0
    assert "2,961 entries" in capsys.readouterr().out
    assert len(Vocabulary.load(out)) == 2961
    # no training captions in the real folder: the default split names the missing train file
    assert main(argv) == 2
    assert "cap.rc2.train.json" in capsys.readouterr().err


def test_bad_split_is_a_user_error(
    real_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["data", "vocab", "--dataset", "fashioniq", "--root", str(real_data / "fashioniq")]
    assert main([*argv, "--out", str(tmp_path / "v.json"), "--split", "dev"]) == 2
    assert "split must be one of" in capsys.readouterr().err
    assert not (tmp_path / "v.json").exists()
