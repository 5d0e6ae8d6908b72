"""AdamW state keyed by parameter name: gathered whole at every checkpoint, carried into a new run.

A checkpoint's DeepSpeed files hold the optimizer state as ZeRO laid it out (flat partitions per rank and
param group), which only the same trainable set, grouping and world size can load. Beside them the trainer
writes `optimizer_by_name.pt`: {parameter name: {"exp_avg", "exp_avg_sq" (full fp32 tensors), "step"}}.
A fresh run with `checkpoint.init_optimizer_from` seeds every trainable parameter of the same name and
shape from it (e.g. stage 2 of a two-stage recipe, where more parameters train than in stage 1); the
others start fresh (zero moments, step 0).

AdamW's step count is per parameter in torch but per param group once DeepSpeed flattens the groups
(ZeRO 1/2, bf16), so the trainer puts parameters of different carried step counts in different groups
(param_groups' `steps`) and each group gets its step here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from coir.common.errors import ConfigError, MissingInputError
from coir.pipeline import checkpoint

FILE = checkpoint.OPTIMIZER_BY_NAME
KEY = "checkpoint.init_optimizer_from"
MOMENTS = ("exp_avg", "exp_avg_sq")
FORMAT = 1


def _base(engine: Any) -> torch.optim.Optimizer:
    """The torch AdamW: DeepSpeed's ZeRO and bf16 optimizers wrap it, fp32 stage 0 uses it as is."""
    return getattr(engine.optimizer, "optimizer", engine.optimizer)


def _checked_base(engine: Any, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    base = _base(engine)
    if len(base.param_groups) != len(groups):
        raise RuntimeError(
            f"the optimizer has {len(base.param_groups)} param groups, the trainer built {len(groups)}"
        )
    return base


def _layout(base: torch.optim.Optimizer, index: int, group: dict[str, Any]) -> str:
    """Where AdamW's state of group `index` lives: "each" (per parameter, or per fp32 copy of it: fp32 or
    bf16 on CPU at ZeRO stage 0), "flat" (one fp32 copy of the whole group: bf16 on GPU at stage 0) or
    "partitioned" (this rank's part of that copy, mapped to the parameters by DeepSpeed: ZeRO 1/2)."""
    held, params = base.param_groups[index]["params"], group["params"]
    if hasattr(params[0], "_hp_mapping"):
        return "partitioned"
    if len(held) == len(params) and all(h.shape == p.shape for h, p in zip(held, params, strict=True)):
        return "each"
    if len(held) == 1 and held[0].numel() == sum(p.numel() for p in params):
        return "flat"
    raise RuntimeError(f"unknown layout of the optimizer's param group {index} ({type(base).__name__})")


def _named(group: dict[str, Any]) -> list[tuple[str, torch.nn.Parameter, int]]:
    """(name, parameter, offset in the group's flat copy) in the group's order."""
    named, offset = [], 0
    for name, param in zip(group["names"], group["params"], strict=True):
        named.append((name, param, offset))
        offset += param.numel()
    return named


def _view(state: dict[str, Any], key: str, param: torch.Tensor, offset: int) -> torch.Tensor:
    return state[key].narrow(0, offset, param.numel()).view_as(param)


def gather(engine: Any, groups: list[dict[str, Any]], keep: bool) -> dict[str, Any] | None:
    """Collective: the full AdamW state of every parameter that has one (AdamW creates it lazily, at a
    parameter's first step) by name; None where not `keep` (the ranks that write nothing) or if none has."""
    from deepspeed.utils import safe_get_full_optimizer_state

    base = _checked_base(engine, groups)
    state: dict[str, dict[str, Any]] = {}
    for index, group in enumerate(groups):
        layout = _layout(base, index, group)
        held = base.param_groups[index]["params"]
        for position, (name, param, offset) in enumerate(_named(group)):
            # every rank holds a partition of a flat group: all agree on skipping
            own = base.state.get(held[position] if layout == "each" else held[0])
            if not own:
                continue
            flat = held[0]
            if layout == "partitioned":
                if param._hp_mapping is not None:  # this rank holds a part of it: link that part
                    param._hp_mapping.set_optim_state_fragment(flat, own)
                moments = {k: safe_get_full_optimizer_state(param, k) for k in MOMENTS}
            elif layout == "flat":
                moments = {k: _view(own, k, param, offset) for k in MOMENTS}
            else:
                moments = {k: own[k] for k in MOMENTS}
            if keep:
                copied = {k: v.detach().float().cpu().clone() for k, v in moments.items()}
                state[name] = {**copied, "step": float(own["step"])}
    return {"format": FORMAT, "state": state} if keep and state else None


def source_file(path: str) -> Path:
    """The name-keyed state of a checkpoint folder, or of the newest complete checkpoint in a checkpoint
    folder or in a run folder's checkpoints/."""
    given = Path(path)
    if not given.exists():
        raise MissingInputError(given, f"checkpoint ({KEY})")
    found = given if (given / checkpoint.MARKER).is_file() else None
    found = found or checkpoint.newest(given) or checkpoint.newest(given / "checkpoints")
    if found is None:
        raise ConfigError(
            f"key {KEY!r}: no complete checkpoint in {given} (a step_* folder holding "
            f"{checkpoint.MARKER}, a checkpoint folder, or a run folder with checkpoints/)"
        )
    if not (found / FILE).is_file():
        raise ConfigError(
            f"key {KEY!r}: {found} has no name-keyed optimizer state ({FILE}): the source run must set "
            "checkpoint.optimizer_by_name: true (and have taken an optimizer step before the checkpoint)"
        )
    return found / FILE


def load(path: str) -> tuple[Path, dict[str, dict[str, Any]]]:
    """(the file, {name: {"exp_avg", "exp_avg_sq", "step"}}) that checkpoint.init_optimizer_from names."""
    file = source_file(path)
    try:
        content = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file: torch raises several error types
        raise ConfigError(f"key {KEY!r}: {file} cannot be read: {error}") from error
    if not isinstance(content, dict) or content.get("format") != FORMAT or not content.get("state"):
        raise ConfigError(f"key {KEY!r}: {file} holds no usable optimizer state")
    return file, content["state"]


def carried_steps(
    model: torch.nn.Module, source: Mapping[str, Mapping[str, Any]], file: Path
) -> dict[str, float]:
    """{name: step} of the trainable parameters whose name and shape the source holds."""
    steps = {
        name: float(source[name]["step"])
        for name, param in model.named_parameters()
        if param.requires_grad and name in source and tuple(source[name]["exp_avg"].shape) == param.shape
    }
    if not steps:
        raise ConfigError(
            f"key {KEY!r}: no trainable parameter of this model has state in {file} under the same name "
            f"and shape (it holds {len(source)} parameters, e.g. {next(iter(source))!r})"
        )
    return steps


@dataclass
class Carried:
    params: int
    elements: int
    fresh_params: int
    fresh_elements: int

    def message(self, file: Path) -> str:
        return (
            f"optimizer state from {file}: {self.params} parameters ({self.elements:,} elements) carried, "
            f"{self.fresh_params} parameters ({self.fresh_elements:,} elements) start fresh"
        )


def seed(
    engine: Any,
    groups: list[dict[str, Any]],
    steps: Mapping[str, float],
    source: Mapping[str, Mapping[str, Any]],
) -> Carried:
    """Set the AdamW state of the parameters in `steps` from `source` before the first step. Every group
    holds parameters of one carried step count (0: fresh, left to AdamW's own initialisation)."""
    from deepspeed.utils import safe_set_full_optimizer_state

    base = _checked_base(engine, groups)
    counts = Carried(0, 0, 0, 0)
    for index, group in enumerate(groups):
        named = _named(group)
        if group["names"][0] not in steps:
            counts.fresh_params += len(named)
            counts.fresh_elements += sum(p.numel() for _, p, _ in named)
            continue
        step = steps[group["names"][0]]
        layout = _layout(base, index, group)
        held = base.param_groups[index]["params"]
        flat = held[0]
        if layout != "each":
            base.state[flat] = _fresh(flat, step)
        for position, (name, param, offset) in enumerate(named):
            if layout == "partitioned":
                if param._hp_mapping is not None:
                    param._hp_mapping.set_optim_state_fragment(flat, base.state[flat])
                for key in MOMENTS:
                    safe_set_full_optimizer_state(param, source[name][key], key)
                continue
            if layout == "each":
                base.state[held[position]] = _fresh(held[position], step)
            for key in MOMENTS:
                if layout == "each":
                    base.state[held[position]][key].copy_(source[name][key])
                else:
                    _view(base.state[flat], key, param, offset).copy_(source[name][key])
        counts.params += len(named)
        counts.elements += sum(p.numel() for _, p, _ in named)
    return counts


def _fresh(param: torch.Tensor, step: float) -> dict[str, torch.Tensor]:
    """AdamW's state as torch creates it (not capturable, not fused), at `step`."""
    return {
        "step": torch.tensor(step, dtype=torch.float32),
        "exp_avg": torch.zeros_like(param, dtype=torch.float32, memory_format=torch.preserve_format),
        "exp_avg_sq": torch.zeros_like(param, dtype=torch.float32, memory_format=torch.preserve_format),
    }
