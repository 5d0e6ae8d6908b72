"""Paths read from data files stay inside the folder they are relative to.

The check is on the path as written (lexical): an absolute path, or one whose ".." climbs above its
root, is refused. Symbolic links inside the root are the user's own set-up (an image folder linked from
another disk) and are followed.
"""

from __future__ import annotations

from pathlib import PurePosixPath


def outside_root(relpath: str) -> str | None:
    """Why `relpath` would leave the folder it is relative to; None when it stays inside."""
    if "\x00" in relpath:
        return "holds a NUL byte"
    path = PurePosixPath(relpath)
    if path.is_absolute():
        return "is an absolute path"
    depth = 0
    for part in path.parts:
        depth += -1 if part == ".." else 0 if part == "." else 1
        if depth < 0:
            return "climbs above its root with '..'"
    return None
