"""Modality-redundancy labels, computed from the render-side truth (not from the design intent).

For a query (reference, text, target) in a split whose gallery is the split's images:
- "text":  the text's content holds for exactly one gallery image other than the reference, the
           target, so the text alone finds it;
- "image": the target is the single nearest gallery image to the reference (scene distance; only
           members of the reference's family are near), so the reference alone finds it;
- "both":  neither alone does.
Designed worlds never make a query both text- and image-redundant; `conflicts` counts any that are
(they are labelled "text").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Sequence

LABELS = ("both", "image", "text")


def image_redundant(
    ref: int, target: int, family: Sequence[int], distance: Callable[[int, int], int]
) -> bool:
    """True when target is the unique nearest member of the family to ref (ref itself excluded)."""
    d = {m: distance(ref, m) for m in family if m != ref}
    best = min(d.values())
    return d[target] == best and sum(v == best for v in d.values()) == 1


class FactIndex:
    """How many gallery images carry each fact, to test a text's uniqueness in O(1)."""

    def __init__(self, facts_per_image: Sequence[frozenset]) -> None:
        self.facts = facts_per_image
        self.counts: Counter[Hashable] = Counter(f for facts in facts_per_image for f in facts)

    def unique_for(self, fact: Hashable, ref: int, target: int) -> bool:
        n = self.counts[fact] - (fact in self.facts[ref])
        return n == 1 and fact in self.facts[target]


def label(text_unique: bool, image_near: bool) -> tuple[str, bool]:
    """(label, conflict)."""
    if text_unique:
        return "text", image_near
    return ("image" if image_near else "both"), False


def summarize(labels: Sequence[str], target: dict[str, float], conflicts: int) -> dict:
    counts = {k: sum(x == k for x in labels) for k in LABELS}
    n = len(labels)
    return {
        "queries": n,
        "counts": counts,
        "share": {k: round(v / n, 4) if n else 0.0 for k, v in counts.items()},
        "target_share": dict(target),
        "conflicts": conflicts,
    }
