"""Loud weight and tokenizer loading, shared by every family.

Every load of pretrained weights reports its missing and unexpected keys, naming the file; a
missing key the model needs stops the run unless the family's `allow_partial` switch says the
partial load is deliberate (then the keys are logged). A tokenizer folder must hold tokenizer
files: transformers otherwise falls back to a tokenizer of a handful of special tokens.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from coir.common.errors import ConfigError

log = logging.getLogger("coir.models.loading")

#: files of which a tokenizer folder holds at least one (fast tokenizer, WordPiece/BPE vocabulary,
#: sentencepiece model)
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "tokenizer.model", "spiece.model")
SHOWN_KEYS = 12


def listed(keys: Iterable[str], shown: int = SHOWN_KEYS) -> str:
    keys = sorted(keys)
    text = ", ".join(keys[:shown])
    return text + (f", … ({len(keys) - shown} more)" if len(keys) > shown else "")


def require_tokenizer_files(folder: str | Path, key: str) -> Path:
    """ConfigError naming `key`, the folder and the files looked for when `folder` holds no tokenizer."""
    folder = Path(folder)
    if folder.is_dir() and any((folder / name).is_file() for name in TOKENIZER_FILES):
        return folder
    raise ConfigError(
        f"key {key!r}: {folder} holds no tokenizer files (none of {', '.join(TOKENIZER_FILES)}); "
        "give a tokenizer folder with model.tokenizer=DIR (e.g. the bert-base-uncased tokenizer the "
        "checkpoint was trained with, or one written by coir.pipeline.models.blip.tokenizer.train_wordpiece)"
    )


def check_keys(
    source: str | Path,
    missing: Iterable[str],
    unexpected: Iterable[str],
    *,
    key: str,
    allow_partial: bool = False,
    mismatched: Iterable[str] = (),
) -> dict[str, list[str]]:
    """Report a weight load: ConfigError naming the file and keys when weights the model needs are
    missing or wrongly shaped (unless allow_partial, which logs them); unexpected keys are logged.
    Returns the report {"missing", "unexpected", "mismatched"} (sorted lists)."""
    report = {
        "missing": sorted(missing),
        "unexpected": sorted(unexpected),
        "mismatched": sorted(mismatched),
    }
    if report["unexpected"]:
        log.warning(
            "%s (%s): %d unexpected keys not used by the model: %s",
            source,
            key,
            len(report["unexpected"]),
            listed(report["unexpected"]),
        )
    kinds = ("missing", "mismatched")
    problems = [f"{len(report[k])} {k} keys: {listed(report[k])}" for k in kinds if report[k]]
    if not problems:
        log.info("%s (%s): every weight the model needs loaded", source, key)
        return report
    if allow_partial:
        log.warning(
            "%s (%s): partial load (allow_partial): %s; these weights keep their random initialisation",
            source,
            key,
            "; ".join(f"{len(report[k])} {k} keys: {', '.join(report[k])}" for k in kinds if report[k]),
        )
        return report
    raise ConfigError(
        f"key {key!r}: {source} lacks weights the model needs ({'; '.join(problems)}); is it a checkpoint "
        "of this architecture? Set model.allow_partial=true to start those weights from random on purpose"
    )


def load_state_checked(
    module: Any, state: Mapping[str, Any], may_be_absent: Callable[[str], bool], what: str
) -> None:
    """Load `state` into `module` after checking every key: ConfigError starting with `what` and naming
    the missing (unless `may_be_absent(key)`), unexpected and wrongly shaped keys."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state and not may_be_absent(k)]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {list(state[k].shape)} (expected {list(v.shape)})"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        problems = [f"missing keys ({len(missing)}): {listed(missing)}"] if missing else []
        problems += [f"unexpected keys ({len(unexpected)}): {listed(unexpected)}"] if unexpected else []
        problems += [f"wrong shapes ({len(shapes)}): {listed(shapes)}"] if shapes else []
        raise ConfigError(f"{what}; " + "; ".join(problems))
    module.load_state_dict(state, strict=False)
