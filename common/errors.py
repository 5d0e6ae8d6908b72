"""User-facing errors. The CLI prints them as `coir: error: …` (exit 2) without a traceback.

They live in coir.common, below every other package, so each of them can raise them.
"""

from __future__ import annotations

import errno
from pathlib import Path


class CoirError(Exception):
    """Base of every error that is the user's input, not a bug: bad file, bad config, bad path."""


class MissingInputError(CoirError, FileNotFoundError):
    """A file or folder the user pointed at does not exist."""

    def __init__(self, path: str | Path, what: str = "file") -> None:
        self.path = Path(path)
        super().__init__(f"{what} not found: {self.path}")


class DataFormatError(CoirError, ValueError):
    """A file exists but does not hold what its format says: names the file, record (or line of a
    text file, 1-based) and field."""

    def __init__(
        self,
        path: str | Path,
        message: str,
        index: int | str | None = None,
        field: str | None = None,
        line: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.index = index
        self.field = field
        self.line = line
        where = str(self.path)
        if index is not None:
            where += f", record {index}"
        if line is not None:
            where += f", line {line}"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {message}")


class ConfigError(CoirError, ValueError):
    """A configuration key, value or path is wrong; the message names it."""


DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(CoirError, OSError):
    """A file could not be written for lack of space (or quota); names the file. Atomic writers raise
    it with the temp file already removed, so nothing half-written is left under the final name."""

    def __init__(self, path: str | Path, note: str = "free space and rerun") -> None:
        self.path = Path(path)
        self.note = note
        super().__init__(
            f"{self.path}: could not be written: no space left on the device (or over quota); {note}"
        )
