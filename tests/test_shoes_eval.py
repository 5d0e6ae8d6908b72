"""The Shoes benchmark: gallery, queries and the reference's exclusion against hand-worked ranks, the
metrics and model-selection measure, and `coir eval --benchmark shoes` with a tiny ARTEMIS on the
synthetic world (its vocabulary built by `coir data vocab --dataset shoes`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from lasco_fixture import run_command
from shoes_fixture import EVAL_ORDER, NAMES, make_shoes
from synth_fixture import built_world

from coir.common.errors import ConfigError
from coir.eval import cli
from coir.eval.api import evaluate
from coir.eval.config import EvalConfig
from coir.pipeline.models.base import RetrievalModel


class GreyProcessor:
    """Image -> its grey level (0..255) [1, 1, 1]; caption "+40" -> [[40]]."""

    image_size = 1

    def image(self, image) -> torch.Tensor:
        return torch.tensor(float(np.asarray(image.convert("L")).mean())).view(1, 1, 1)

    def passes_through(self, width: int, height: int) -> bool:
        return False  # every image goes through image()

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        return images  # image() already gives the model's input

    def text(self, texts: list[str]) -> dict[str, torch.Tensor]:
        ids = torch.tensor([[int(t)] for t in texts])
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


class GreyModel(RetrievalModel):
    """Query = the reference's grey level plus the caption's shift; score = minus the distance of a
    gallery image's level to it."""

    name = "grey"

    def encode_query(self, batch):
        return batch["query_image"].flatten(1)[:, :1] + batch["input_ids"][:, :1].float()

    def encode_target(self, images):
        return images.flatten(1)[:, :1]

    def score(self, query_state, gallery_state):
        return -(query_state - gallery_state.T).abs()

    def loss(self, batch):
        return {"loss": torch.zeros(())}

    def processor(self):
        return GreyProcessor()

    def export_config(self):
        return {"kind": "grey"}


def test_gallery_queries_and_ranks_worked_by_hand(tmp_path: Path) -> None:
    root = make_shoes(tmp_path / "shoes")
    config = EvalConfig(benchmark="shoes", split="test", data_root=str(root), num_workers=0, pictures=False)
    evaluation = evaluate(GreyModel(), config)
    result = evaluation.results["shoes/test"][0]
    task = result.task
    assert task.gallery_names == [NAMES[k] for k in EVAL_ORDER]  # every eval image, not only targets
    assert [q.key for q in task.queries] == ["0", "2", "4", "5", "6"]  # entry 1 is cross-split
    assert all(q.exclude == (q.reference,) for q in task.queries)
    # Levels: A 10, B 50, C 60, D 100, E 200; gallery order C A E B D.
    # entry 0: A + 40 = 50 -> B (0), C (10), D (50), E (150); A excluded      -> target B at rank 0
    # entry 2: B + 45 = 95 -> D (5), C (35), A (85), E (105); B excluded      -> target C at rank 1
    # entry 4: E + 0 = 200, target E = its own reference, excluded            -> never found (-1)
    # entry 5: D + 0 = 100 -> C (40), B (50), A (90), E (100); D itself (0) excluded -> target B at rank 1
    # entry 6: C - 50 = 10 -> A (0), B (40), D (90), E (190); C excluded      -> target A at rank 0
    assert result.ranking.target_rank.tolist() == [0, 1, -1, 1, 0]
    assert result.top_names(1) == [NAMES["D"], NAMES["C"], NAMES["A"], NAMES["E"]]
    assert result.top_names(3) == [NAMES["C"], NAMES["B"], NAMES["A"], NAMES["E"]]
    assert all(q.reference not in result.top_names(i) for i, q in enumerate(task.queries))
    metrics = evaluation.fragment["shoes/test"]["grey"]
    assert metrics == pytest.approx(
        {"R@1": 40.0, "R@10": 80.0, "R@50": 80.0, "avg": 200 / 3, "queries": 5}
    )  # 2, 4 and 4 of the 5 queries
    # mask_reference=false does not bring the reference back: the protocol always removes it
    again = evaluate(GreyModel(), EvalConfig(**{**vars(config), "mask_reference": False}))
    assert again.results["shoes/test"][0].ranking.target_rank.tolist() == [0, 1, -1, 1, 0]


def test_validator_reads_the_mean_of_the_three_recalls(tmp_path: Path) -> None:
    from coir.eval.validation import validator_for

    root = make_shoes(tmp_path / "shoes")
    out = validator_for("shoes")(GreyModel(), str(root), "test", "cpu")
    assert out["main"] == pytest.approx((40 + 80 + 80) / 3) == pytest.approx(out["avg"])
    with pytest.raises(ConfigError, match="shoes has the splits train, test, got 'val'"):
        validator_for("shoes")(GreyModel(), str(root), "val", "cpu")
    with pytest.raises(ConfigError, match="validation.options"):
        validator_for("shoes", {"categories": ["boots"]})


def test_the_trainer_checks_the_validation_split_before_training(tmp_path: Path) -> None:
    from coir.pipeline.config import load_train_config
    from coir.pipeline.engine import find_validator

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("validation:\n  benchmark: shoes\n  data_root: x\n")
    with pytest.raises(
        ConfigError, match="key 'validation.split': shoes has the splits train, test, got 'val'"
    ):
        find_validator(load_train_config(recipe, []))  # the default split, val, is not a Shoes split
    assert callable(find_validator(load_train_config(recipe, ["validation.split=test"])))


def test_images_under_another_root(tmp_path: Path) -> None:
    root = make_shoes(tmp_path / "shoes")
    annotations = tmp_path / "annotations"
    annotations.mkdir()
    for name in ("relative_captions_shoes.json", "train_im_names.txt", "eval_im_names.txt"):
        (root / name).rename(annotations / name)
    config = EvalConfig(
        benchmark="shoes", split="test", data_root=str(annotations), image_root=str(root), num_workers=0
    )
    ranks = evaluate(GreyModel(), config).results["shoes/test"][0].ranking.target_rank
    assert ranks.tolist() == [0, 1, -1, 1, 0]


def coir_eval(*argv: object) -> int:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.run(parser.parse_args([str(a) for a in argv]))


def test_coir_eval_on_the_synthetic_shoes(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    from coir.pipeline.models.artemis.config import ArtemisModelConfig
    from coir.pipeline.models.export import save_export
    from coir.pipeline.models.registry import build_model

    world = built_world(tmp_path_factory)
    vocabulary = tmp_path / "shoes_vocab.json"
    args = ["--dataset", "shoes", "--root", str(world / "shoes"), "--out", str(vocabulary)]
    assert run_command("coir.datasets.vocab_cli", args) == 0
    torch.manual_seed(0)
    model = build_model(
        ArtemisModelConfig(
            vocabulary=str(vocabulary),
            backbone="resnet18",
            embed_dim=32,
            word_dim=16,
            image_size=32,
            resize=32,
            max_length=12,
        )
    )
    export = save_export(model, tmp_path / "export")
    out = tmp_path / "out"
    code = coir_eval(
        "--checkpoint", export, "--benchmark", "shoes", "--split", "test", "--data-root", world / "shoes",
        "--out", out, "--no-cache", "--num-workers", "0", "--no-pictures",
    )  # fmt: skip
    assert code == 0
    captions = json.loads((world / "shoes" / "relative_captions_shoes.json").read_text())
    names = set((world / "shoes" / "eval_im_names.txt").read_text().split())
    n_eval = sum({c["ImageName"], c["ReferenceImageName"]} <= names for c in captions)
    counts = json.loads((world / "world.json").read_text())["counts"]["shoes"]
    assert n_eval == counts["test"]["triplets"] and len(captions) > n_eval + counts["train"]["triplets"]
    metrics = json.loads((out / "results.json").read_text())["shoes/test"]["artemis"]
    assert metrics["queries"] == n_eval
    assert set(metrics) == {"R@1", "R@10", "R@50", "avg", "queries"}
    assert metrics["avg"] == pytest.approx((metrics["R@1"] + metrics["R@10"] + metrics["R@50"]) / 3, abs=1e-3)
    assert metrics["R@50"] == 100.0  # 24 gallery images, the reference removed: every target within 50
    assert not (out / "submissions").exists()  # no evaluation server
    with pytest.raises(ConfigError, match="shoes has the splits train, test"):
        coir_eval("--checkpoint", export, "--benchmark", "shoes", "--data-root", world / "shoes")


def test_zeroshot_config_loads() -> None:
    from coir.common.config import load_config
    from coir.eval.config import check_eval_config

    repo = Path(__file__).resolve().parents[1]
    config = load_config(EvalConfig, repo / "configs" / "zeroshot" / "shoes.yaml", ["checkpoint=x"])
    check_eval_config(config)
    assert (config.benchmark, config.split) == ("shoes", "test")
