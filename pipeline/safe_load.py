"""Loading checkpoint files without running code from them.

`torch.load(weights_only=False)`, DeepSpeed's own loader, calls whatever callable a pickle names, so a
crafted file in a checkpoint folder would run code on resume. Every file a resume reads goes through
torch's weights-only unpickler instead: tensors, plain containers, numbers and strings, plus the three
DeepSpeed classes its ZeRO optimizer files hold (allow-listed by name, for that load only). A file that
needs anything else is refused with an error naming the file and the global it asked for.

    state = load_weights_only(path)                 # coir's own files (rank_*.pt, optimizer_by_name.pt)
    with deepspeed_loads_weights_only(engine):      # DeepSpeed's files, read by engine.load_checkpoint
        engine.load_checkpoint(...)
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from coir.common.errors import DataFormatError

_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def deepspeed_types() -> list[type]:
    """What DeepSpeed's ZeRO 1/2 optimizer files (fp32 and bf16) pickle besides tensors and plain data;
    each is plain data itself (an enum, a dataclass of two ints, a loss scaler's numbers)."""
    from deepspeed.runtime.fp16.loss_scaler import LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    return [ZeroStageEnum, fragment_address, LossScaler]


def load_weights_only(
    path: str | Path, map_location: Any = None, allowed: Sequence[Callable[..., Any] | type] = ()
) -> Any:
    """torch.load with weights_only=True (and `allowed` allow-listed); DataFormatError naming the file
    when it holds anything else, or is no PyTorch file."""
    path = Path(path)
    try:
        with torch.serialization.safe_globals(list(allowed)):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        names = sorted(set(_GLOBAL.findall(str(error))))
        named = f"it names {', '.join(names)}" if names else str(error).strip().splitlines()[-1]
        raise DataFormatError(
            path,
            f"refused: holds more than tensors and plain data ({named}), which only an unpickler that runs "
            "the code a file names could load; a checkpoint written by coir never does",
        ) from None
    except (RuntimeError, EOFError) as error:
        raise DataFormatError(path, f"not a readable PyTorch file: {error}") from None


class _WeightsOnlyFiles:
    """The engine's checkpoint engine, with its `load` replaced by load_weights_only."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def load(self, path: str, map_location: Any = None) -> Any:
        return load_weights_only(path, map_location, deepspeed_types())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@contextmanager
def deepspeed_loads_weights_only(engine: Any) -> Iterator[None]:
    """While active, every file `engine.load_checkpoint` reads (model states, ZeRO optimizer partitions)
    is read by load_weights_only: DeepSpeed reads them all through `engine.checkpoint_engine.load`."""
    inner = engine.checkpoint_engine
    engine.checkpoint_engine = _WeightsOnlyFiles(inner)
    try:
        yield
    finally:
        engine.checkpoint_engine = inner
