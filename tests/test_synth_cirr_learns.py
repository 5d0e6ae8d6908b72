"""A fusion model trained on the synthetic CIRR beats image-only there, as on the real CIRR.

The synthetic CIRR's six-image sets are near-duplicates that differ in what the caption names
(datasets/synth/cirr_world.py), so the reference's nearest image is mostly not the target. This trains
the tiny CLIP4Cir (a random 2-layer open_clip and the Combiner) on the synthetic CIRR train split
through `coir data shards cirr` and `coir train`, then ranks CIRR val with `coir eval --redundancy`:
the fused query against the image-only and text-only queries of the same trained towers. If the world
stopped needing the text (or the benchmark stopped reading it), the fused model would fall to
image-only and this fails."""

from __future__ import annotations

from pathlib import Path

from lasco_fixture import run_command
from learning_support import train_tiny

from coir.datasets.synth import cirr_world

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "configs" / "methods" / "clip4cir_tiny.yaml"
# the CIRR shards hold each set's triplets together: a buffer over the whole train split (1,044
# triplets) keeps a batch from being a few sets' near-duplicates
SHUFFLED = ("data.batch_size=32", "data.shuffle_buffer=1100", "data.shuffle_initial=1100")


def test_trained_fusion_beats_image_only_and_text_only_on_the_synthetic_cirr(tmp_path: Path) -> None:
    from coir.eval.api import evaluate
    from coir.eval.config import EvalConfig

    world = tmp_path / "world"
    for split, sets in (("train", 300), ("val", 60)):  # the demo's world: 64 px, seed 0
        cirr_world.build_split(world, split, sets, 0, 64, image_share=0.15, text_share=0.15)
    shards = tmp_path / "shards"
    argv = ["cirr", "--root", str(world / "cirr"), "--split", "train", "--out", str(shards), "--size", "32"]
    assert run_command("coir.datasets.shards.cli", [*argv, "--no-progress"]) == 0
    export = train_tiny(RECIPE, [shards / "triplets"], tmp_path / "run", 200, *SHUFFLED)

    config = EvalConfig(
        checkpoint=str(export), benchmark="cirr", split="val", data_root=str(world / "cirr"), device="cpu",
        num_workers=0, cache=False, pictures=False, redundancy=True,
    )  # fmt: skip
    rows = evaluate(export, config).fragment["cirr/val"]
    print({name: {k: rows[name][k] for k in ("R@1", "R@5", "Rs@1")} for name in rows})
    fused, image, text = rows["clip4cir"], rows["clip4cir-image-only"], rows["clip4cir-text-only"]
    assert fused["queries"] == image["queries"] >= 200
    assert fused["R@1"] >= image["R@1"] + 3 and fused["Rs@1"] >= image["Rs@1"] + 8
    assert fused["R@1"] >= text["R@1"] + 20
