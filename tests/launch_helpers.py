"""Helpers for the launch tests: run `coir launch ...` in-process, hash folders."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
from pathlib import Path

from coir.common.errors import CoirError

REPO = Path(__file__).resolve().parents[1]
TESTBED_CLUSTER = REPO / "configs" / "cluster" / "testbed.yaml"


def launch_parser() -> argparse.ArgumentParser:
    from coir.launch import cli

    parser = argparse.ArgumentParser(prog="coir launch")
    cli.add_arguments(parser)
    return parser


def coir_launch(*argv: str) -> tuple[int, str]:
    """`coir launch ARGV` in this process: (exit code, stdout); a CoirError gives 2 like the CLI."""
    from coir.launch import cli

    args = launch_parser().parse_args([str(a) for a in argv])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            code = cli.run(args)
        except CoirError as error:
            print(f"coir: error: {error}")
            code = 2
    return code, out.getvalue()


def folder_digest(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file below root."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
