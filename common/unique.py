"""Duplicate ids in a data file are an error naming the file and both records, never a silent last-wins."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from pathlib import Path

from coir.common.errors import DataFormatError


def duplicates(values: Iterable[Hashable]) -> list[tuple[int, int, Hashable]]:
    """(index of the first occurrence, index of the repeat, value) for every repeat, in order."""
    first: dict[Hashable, int] = {}
    found = []
    for index, value in enumerate(values):
        if value in first:
            found.append((first[value], index, value))
        else:
            first[value] = index
    return found


def require_unique(path: str | Path, values: Iterable[Hashable], what: str, field: str | None = None) -> None:
    """DataFormatError at the first record of `path` that repeats an earlier record's `what`."""
    found = duplicates(values)
    if found:
        first, repeat, value = found[0]
        more = f"; {len(found) - 1} more repeat(s) in the file" if len(found) > 1 else ""
        raise DataFormatError(
            path, f"duplicate {what} {value!r}, first at record {first}{more}", index=repeat, field=field
        )
