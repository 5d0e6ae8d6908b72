"""Query and gallery states: a tensor or a tree (dicts, lists, tuples) of tensors, batch first.

A dot-product model keeps one [N, D] embedding; a model that scores a query against a candidate
jointly keeps what its `score` needs (ARTEMIS: the reference feature beside the text's attention
masks). Evaluation slices, concatenates, moves, caches and gathers states with these helpers,
without knowing their shape.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

State = Any  # torch.Tensor | dict[str, State] | list[State] | tuple[State, ...]


def tree_map(fn: Callable[[torch.Tensor], Any], state: State) -> State:
    if isinstance(state, torch.Tensor):
        return fn(state)
    if isinstance(state, dict):
        return {key: tree_map(fn, value) for key, value in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(tree_map(fn, value) for value in state)
    raise TypeError(f"a model state holds tensors, dicts, lists and tuples, not {type(state).__name__}")


def leaves(state: State) -> list[torch.Tensor]:
    out: list[torch.Tensor] = []
    tree_map(out.append, state)
    return out


def tree_len(state: State) -> int:
    """The batch size (first dimension, the same on every leaf)."""
    sizes = {leaf.shape[0] for leaf in leaves(state)}
    if len(sizes) != 1:
        raise ValueError(f"state leaves disagree on the batch size: {sorted(sizes)}")
    return sizes.pop()


def tree_slice(state: State, start: int, stop: int) -> State:
    return tree_map(lambda leaf: leaf[start:stop], state)


def tree_cat(states: Sequence[State]) -> State:
    """Concatenate states of the same structure along the batch dimension."""
    first = states[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(list(states))
    if isinstance(first, dict):
        return {key: tree_cat([s[key] for s in states]) for key in first}
    return type(first)(tree_cat([s[i] for s in states]) for i in range(len(first)))


def to_float32(state: State) -> State:
    """Floating leaves as float32 (states are compared across precisions and cached as float32)."""
    return tree_map(lambda leaf: leaf.float() if leaf.is_floating_point() else leaf, state)


def tree_to(state: State, device: str | torch.device) -> State:
    return tree_map(lambda leaf: leaf.to(device, non_blocking=True), state)


def tree_nbytes(state: State) -> int:
    return sum(leaf.numel() * leaf.element_size() for leaf in leaves(state))
