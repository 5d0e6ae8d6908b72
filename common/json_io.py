"""JSON file helpers shared by the format readers and writers.

Readers get a clear error for a missing file, invalid JSON or a malformed record (file, record
index and field named); writers are atomic (coir.common.atomic) and deterministic.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from coir.common.atomic import write_bytes_atomic
from coir.common.errors import DataFormatError, MissingInputError

_TYPE_NAMES = {int: "integer", float: "number", str: "string", list: "list", dict: "object", bool: "boolean"}


class _RepeatedKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        raise _RepeatedKey(next(k for k, _ in pairs if k in seen or seen.add(k)))
    return obj


def load_json(path: str | Path, what: str = "file", *, unique_keys: bool = False) -> Any:
    """Parse a JSON file; missing -> MissingInputError, unparsable -> DataFormatError. With
    `unique_keys`, an object that repeats a key (json keeps the last silently) is a DataFormatError:
    for files whose keys are ids (CIRR image splits, the LaSCo train corpus)."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(path, what)
    try:
        with open(path, "rb") as f:
            return json.load(f, object_pairs_hook=_unique_object if unique_keys else None)
    except _RepeatedKey as e:
        raise DataFormatError(path, f"key {e.key!r} appears twice in one object") from None
    except json.JSONDecodeError as e:
        raise DataFormatError(path, f"invalid JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    except UnicodeDecodeError as e:
        raise DataFormatError(path, f"not UTF-8 text: {e}") from None


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} appears twice")
        out[key] = value
    return out


def load_json_unique_keys(path: str | Path, what: str = "file") -> Any:
    """load_json, but an object that repeats a key is a DataFormatError (json.load keeps the last
    value silently): for files whose keys are ids, such as evaluation-server submissions."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(path, what)
    try:
        return json.loads(path.read_bytes(), object_pairs_hook=_no_repeated_keys)
    except UnicodeDecodeError as e:
        raise DataFormatError(path, f"not UTF-8 text: {e}") from None
    except ValueError as e:  # JSONDecodeError is a ValueError, and so is a repeated key
        raise DataFormatError(path, f"not a valid {what}: {e}") from None


def expect_list(path: Path, obj: Any, field: str | None = None) -> list:
    if not isinstance(obj, list):
        raise DataFormatError(path, f"expected a list, got {type(obj).__name__}", field=field)
    return obj


def expect_dict(path: Path, obj: Any, field: str | None = None) -> dict:
    if not isinstance(obj, dict):
        raise DataFormatError(path, f"expected an object, got {type(obj).__name__}", field=field)
    return obj


def _type_ok(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


class Record:
    """One record of a list-of-objects file; field access checks presence and type."""

    __slots__ = ("path", "index", "data")

    def __init__(self, path: Path, index: int | str, data: Any) -> None:
        if not isinstance(data, dict):
            raise DataFormatError(path, f"expected an object, got {type(data).__name__}", index=index)
        self.path, self.index, self.data = path, index, data

    def error(self, message: str, field: str | None = None) -> DataFormatError:
        return DataFormatError(self.path, message, index=self.index, field=field)

    def get(self, key: str, kind: type, *, optional: bool = False, default: Any = None) -> Any:
        if key not in self.data:
            if optional:
                return default
            raise self.error("missing field", key)
        value = self.data[key]
        if not _type_ok(value, kind):
            raise self.error(
                f"expected {_TYPE_NAMES.get(kind, kind.__name__)}, got {type(value).__name__}", key
            )
        return value

    def str_list(self, key: str, *, optional: bool = False) -> list[str] | None:
        items = self.get(key, list, optional=optional)
        if items is None:
            return None
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise self.error(f"item {i}: expected string, got {type(item).__name__}", key)
        return items

    def pair(self, key: str, first: type, second: type) -> tuple[Any, Any]:
        """A two-element list such as LaSCo's ["query-image"] = [id, path]."""
        value = self.get(key, list)
        if len(value) != 2 or not _type_ok(value[0], first) or not _type_ok(value[1], second):
            raise self.error(
                f"expected [{_TYPE_NAMES[first]}, {_TYPE_NAMES[second]}], got {json.dumps(value)[:80]}", key
            )
        return value[0], value[1]


def records(path: Path, items: list) -> list[Record]:
    return [Record(path, i, item) for i, item in enumerate(items)]


def dump_json(obj: Any, *, indent: int | None = None) -> bytes:
    """Deterministic JSON bytes: the caller's key order (records are built in a fixed order)."""
    return (json.dumps(obj, indent=indent, allow_nan=False) + ("\n" if indent else "")).encode()


def write_json_atomic(path: str | Path, obj: Any, *, indent: int | None = None) -> Path:
    return write_bytes_atomic(path, dump_json(obj, indent=indent))
