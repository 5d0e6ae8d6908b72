"""The `coir` command tree: every registered command loads, has --help with an example."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from coir.pipeline.cli import GROUP, build_parser, main

COMMANDS = sorted(ep.name for ep in entry_points(group=GROUP))


def test_every_subcommand_of_the_design_is_registered() -> None:
    words = {name.split(".")[0] for name in COMMANDS}
    assert {"data", "train", "eval", "launch", "demo"} <= words
    assert {"data.synth", "data.lasco", "data.shards", "data.inspect"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_command_help_shows_an_example(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([*name.split("."), "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "example:" in out and "coir" in out.split("example:")[1]


def test_top_level_help_lists_commands() -> None:
    text = build_parser().format_help()
    for word in ("data", "train", "eval", "launch", "demo"):
        assert word in text


def test_console_script_reports_user_errors_without_traceback(tmp_path) -> None:
    missing = tmp_path / "nowhere"
    result = subprocess.run(
        [sys.executable, "-m", "coir.pipeline.cli", "data", "inspect", str(missing)],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "nowhere" in result.stderr
