"""`coir eval` on the synthetic world with an exported tiny CASE: CLI, cache, redundancy vs truth,
CIRR test1 submissions, FashionIQ categories, LaSCo files, the validators and the configs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from coir.eval import cli
from coir.eval.redundancy import compare_with_truth, labels_at, redundancy_summary

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    from coir.datasets.synth import build_world

    out = tmp_path_factory.mktemp("world") / "w"
    build_world(out, seed=0, scale="tiny")
    return out


@pytest.fixture(scope="module")
def export(world, tmp_path_factory) -> Path:
    from coir.pipeline.models.blip.config import BlipModelConfig
    from coir.pipeline.models.blip.tokenizer import train_wordpiece
    from coir.pipeline.models.export import save_export
    from coir.pipeline.models.registry import build_model

    captions = json.loads((world / "cirr" / "captions" / "cap.rc2.train.json").read_text())
    folder = tmp_path_factory.mktemp("export")
    tokenizer = train_wordpiece([c["caption"] for c in captions], folder / "tokenizer-src", vocab_size=200)
    torch.manual_seed(0)
    model = build_model(
        BlipModelConfig(preset="tiny", tokenizer=str(tokenizer), image_size=32, max_length=16)
    )
    return save_export(model, folder / "export")


def coir_eval(*argv: object) -> int:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.run(parser.parse_args([str(a) for a in argv]))


def test_cli_cirr_with_redundancy_and_cache(world, export, tmp_path, capsys):
    out, cache = tmp_path / "out", tmp_path / "cache"
    args = ["--checkpoint", export, "--benchmark", "cirr", "--data-root", world / "cirr", "--out", out]
    args += ["--cache-dir", cache, "--redundancy", "--num-workers", "0", "--batch-size", "16"]
    assert coir_eval(*args) == 0
    printed = capsys.readouterr().out
    assert "### cirr/val" in printed and "modality redundancy" in printed
    n_queries = len(json.loads((world / "cirr" / "captions" / "cap.rc2.val.json").read_text()))
    results = json.loads((out / "results.json").read_text())
    assert set(results["cirr/val"]) == {"case", "case-image-only", "case-text-only"}
    assert all(m["queries"] == n_queries for m in results["cirr/val"].values())
    summary = json.loads((out / "redundancy.json").read_text())["cirr/val"]
    # every query compared with W/truth/cirr_redundancy_val.json (recovery: test_redundancy_recovers…)
    assert summary["truth"]["matched"] == n_queries
    assert set(summary["labels@1"].values()) <= {"both", "image", "text", "either"}
    cached = sorted(cache.glob("gallery-*.pt"))
    assert len(cached) == 3  # one gallery per model variant
    stamps = [p.stat().st_mtime_ns for p in cached]
    assert coir_eval(*args) == 0  # the second run reads the cache and rewrites nothing
    assert [p.stat().st_mtime_ns for p in sorted(cache.glob("gallery-*.pt"))] == stamps
    assert json.loads((out / "results.json").read_text()) == results  # same numbers from the cache


def test_cli_cirr_test1_submission(world, export, tmp_path):
    out = tmp_path / "out"
    code = coir_eval(
        "--checkpoint", export, "--benchmark", "cirr", "--split", "test1", "--data-root", world / "cirr",
        "--out", out, "--no-cache", "--num-workers", "0", "--no-pictures",
    )  # fmt: skip
    assert code == 0
    captions = json.loads((world / "cirr" / "captions" / "cap.rc2.test1.json").read_text())
    n_images = len(json.loads((world / "cirr" / "image_splits" / "split.rc2.test1.json").read_text()))
    recall = json.loads((out / "submissions" / "cirr-test1-recall-case.json").read_text())
    subset = json.loads((out / "submissions" / "cirr-test1-recall_subset-case.json").read_text())
    assert recall["version"] == subset["version"] == "rc2"
    assert (recall["metric"], subset["metric"]) == ("recall", "recall_subset")
    assert {k for k in recall if k not in ("version", "metric")} == {str(c["pairid"]) for c in captions}
    for c in captions:
        top, top3 = recall[str(c["pairid"])], subset[str(c["pairid"])]
        assert len(set(top)) == len(top) == min(50, n_images - 1)  # all images but the reference
        assert c["reference"] not in top and c["reference"] not in top3
        assert len(top3) == 3 and set(top3) <= set(c["img_set"]["members"])
    results = json.loads((out / "results.json").read_text())
    # no targets on test1: the query count and the protocol only
    assert results["cirr/test1"]["case"] == {"queries": len(captions), "reference": "removed"}


def test_cli_cirr_test1_without_out_writes_checked_files_beside_the_checkpoint(world, export, capsys):
    from coir.eval.cirr_submission import read_split_queries, validate_submission

    code = coir_eval(
        "--checkpoint", export, "--benchmark", "cirr", "--split", "test1", "--data-root", world / "cirr",
        "--no-cache", "--num-workers", "0", "--no-pictures",
    )  # fmt: skip
    assert code == 0
    folder = Path(export).parent / "eval" / "cirr-test1" / "submissions"
    assert str(folder) in capsys.readouterr().out
    expected = read_split_queries(world / "cirr", "test1")
    assert validate_submission(folder / "cirr-test1-recall-case.json", expected, "recall")[0] == "recall"
    assert validate_submission(folder / "cirr-test1-recall_subset-case.json", expected, "recall_subset")
    assert not (Path(export) / "eval").exists()  # the checkpoint's files (its cache identity) are untouched


def test_cli_fashioniq_baseline_and_template(world, export, tmp_path):
    out = tmp_path / "out"
    code = coir_eval(
        "--checkpoint", export, "--benchmark", "fashioniq", "--data-root", world / "fashioniq", "--out", out,
        "--baseline", "text-only", "--no-cache", "--num-workers", "0", "--mask-reference",
    )  # fmt: skip
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    for category in ("dress", "shirt", "toptee"):
        row = results[f"fashioniq-{category}/val"]["case-text-only"]
        assert set(row) == {
            "R@10",
            "R@50",
            "avg",
            "queries",
            "caption_template",
            "caption_orders",
            "reference",
        }
        assert row["reference"] == "removed"  # --mask-reference, recorded
    n_queries = sum(
        len(json.loads((world / "fashioniq" / "captions" / f"cap.{c}.val.json").read_text()))
        for c in ("dress", "shirt", "toptee")
    )
    assert results["fashioniq/val"]["case-text-only"]["queries"] == n_queries
    assert (out / "fashioniq-dress-val-case-text-only.png").is_file()


def test_validators_return_main(world, export):
    from coir.eval.api import load_model
    from coir.eval.validation import validator_for

    model = load_model(export)
    model.train()
    cirr = validator_for("cirr")(model, str(world / "cirr"), "val", torch.device("cpu"))
    assert cirr["main"] == pytest.approx((cirr["R@5"] + cirr["Rs@1"]) / 2)
    fashion = validator_for("fashioniq")(model, str(world / "fashioniq"), "val", "cpu")
    assert fashion["main"] == pytest.approx((fashion["R@10"] + fashion["R@50"]) / 2)
    per_category = [fashion[f"{c}/R@10"] for c in ("dress", "shirt", "toptee")]
    assert fashion["R@10"] == pytest.approx(sum(per_category) / 3)  # the headline is their mean
    assert model.training  # the trainer's mode is restored
    one_category = validator_for("fashioniq", {"categories": ["dress"]})(model, str(world / "fashioniq"))
    assert one_category["R@10"] == pytest.approx(fashion["dress/R@10"])  # validation.options reach it
    assert "shirt/R@10" not in one_category


def test_validation_options_are_checked_before_training(tmp_path):
    from coir.common.errors import ConfigError
    from coir.eval.validation import validator_for
    from coir.pipeline.config import load_train_config
    from coir.pipeline.engine import find_validator

    with pytest.raises(ConfigError, match="validation.options.*'caption_templat'"):
        validator_for("fashioniq", {"caption_templat": "{c1} and {c2}"})
    with pytest.raises(ConfigError, match="'validation.options.caption_orders'.*'twice'"):
        validator_for("fashioniq", {"caption_orders": "twice"})
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "validation:\n  benchmark: fashioniq\n  data_root: x\n  options:\n    categories: [hat]\n"
    )
    with pytest.raises(ConfigError, match="'validation.options.categories'.*hat"):
        find_validator(load_train_config(recipe, []))


def reference_colour_model():
    """test_eval_cache.ColourModel whose query ignores the text, so each query's nearest gallery
    image is its own reference image (colours differ, embeddings are normalised)."""
    from test_eval_cache import ColourModel

    class ReferenceColourModel(ColourModel):
        def encode_query(self, batch):
            return torch.nn.functional.normalize(batch["query_image"].flatten(1) @ self.image_proj, dim=1)

    return ReferenceColourModel()


def test_lasco_files_end_to_end(tmp_path):
    from PIL import Image

    from coir.eval.api import evaluate
    from coir.eval.config import EvalConfig
    from coir.eval.validation import validator_for

    coco = tmp_path / "coco"
    (coco / "val2014").mkdir(parents=True)
    ids = [42, 73, 74, 133, 136, 140, 151, 162, 170, 181, 199, 204]
    for i, image_id in enumerate(ids):
        Image.new("RGB", (4, 4), (20 * i, 255 - 20 * i, (37 * i) % 256)).save(
            coco / "val2014" / f"COCO_val2014_{image_id:012d}.jpg", quality=100
        )

    def path(image_id: int, prefix: str = "") -> str:
        return f"{prefix}val2014/COCO_val2014_{image_id:012d}.jpg"

    lasco = tmp_path / "lasco"
    lasco.mkdir()
    (lasco / "lasco_val_corpus.json").write_text(
        json.dumps([{"id": i, "path": path(i, "val/")} for i in ids])
    )
    # queries 0, 2, 4, 6: the target is the reference image itself (its nearest neighbour, rank 0);
    # queries 1, 3, 5, 7: another image, which can never beat the reference (rank >= 1)
    targets = [ids[k] if k % 2 == 0 else ids[11 - k] for k in range(8)]
    triplets = [
        {
            "qid": 42000 + k,
            "query-image": [ids[k], path(ids[k])],
            "query-text": "more",
            "target-image": [t, path(t)],
        }
        for k, t in enumerate(targets)
    ]
    (lasco / "lasco_val.json").write_text(json.dumps(triplets))
    model = reference_colour_model()
    config = EvalConfig(
        benchmark="lasco",
        data_root=str(lasco),
        image_root=str(coco),
        out=str(tmp_path / "out"),
        num_workers=0,
    )
    fragment = evaluate(model, config).fragment
    metrics = fragment["lasco/val"]["colour"]
    assert metrics["queries"] == 8 and set(metrics) == {"R@1", "R@5", "R@10", "R@50", "queries"}
    assert len(ids) > 5 and metrics["R@1"] == 50.0 and metrics["R@50"] == 100.0  # 12 images < 50
    result = validator_for("lasco")(model, f"{lasco}::{coco}", "val", "cpu")
    assert result["main"] == result["R@1"] == 50.0


# ---------------------------------------------------------------- oracle single-modality models


def _pixels(image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)


def _digest(pixels: torch.Tensor) -> str:
    import hashlib

    return hashlib.sha256(pixels.contiguous().numpy().tobytes()).hexdigest()


class OracleProcessor:
    """Images -> their pixels; a text -> [[fact id + 1]] (0: no fact) by the model's parser."""

    def __init__(self, parse=None) -> None:
        self.parse = parse

    def image(self, image) -> torch.Tensor:
        return _pixels(image)

    def passes_through(self, width: int, height: int) -> bool:
        return False  # every image goes through image()

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        return images  # image() already gives the model's input

    def text(self, texts: list[str]) -> dict[str, torch.Tensor]:
        ids = torch.tensor([[self.parse(t) + 1 if self.parse else 0] for t in texts])
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def _oracle_base():
    from coir.pipeline.models.base import RetrievalModel

    class Oracle(RetrievalModel):
        name = "oracle"

        def loss(self, batch):
            return {"loss": torch.zeros(())}

        def export_config(self):
            return {"kind": type(self).__name__}

    return Oracle


def pixel_image_only_model():
    """Image-only: the query is the reference's pixels; score = -squared pixel distance, so the
    top-1 is the reference's nearest gallery image (the reference itself is removed by CIRR)."""

    class PixelImageOnly(_oracle_base()):
        def processor(self):
            return OracleProcessor()

        def encode_target(self, images):
            return images.flatten(1).double()

        def encode_query(self, batch):
            return batch["query_image"].flatten(1).double()

        def score(self, q, g):
            return 2 * q @ g.T - (q * q).sum(1, keepdim=True) - (g * g).sum(1)[None, :]

    return PixelImageOnly()


def fact_text_only_model(world: Path, split: str = "val"):
    """Text-only: reads the fact a CIRR caption asks for ("the circle is pink" -> circle is pink;
    counts such as "there are two stars": none, the text families change colours and shapes) and
    retrieves the gallery images holding it, by the facts of W/truth/cirr_scenes_<split>.json (an image is
    recognised by its pixels). Images holding the fact are ordered by a fixed pseudo-random
    tie-breaker, so a fact held by one image finds it and a common one finds the target by chance."""
    import hashlib

    from PIL import Image

    from coir.datasets.synth.render import COLOURS, SHAPES

    plurals = {("crosses" if s == "cross" else s + "s"): s for s in SHAPES}
    vocab: dict[tuple, int] = {}
    by_pixels: dict[str, tuple[set[tuple], float]] = {}
    scenes = json.loads((world / "truth" / f"cirr_scenes_{split}.json").read_text())
    for name, scene in scenes.items():
        objects = scene["objects"]
        facts = {("obj", o["shape"], o["colour"]) for o in objects}
        facts |= {("count", s, sum(o["shape"] == s for o in objects)) for s in SHAPES}
        for fact in sorted(facts):
            vocab.setdefault(fact, len(vocab))
        tie_breaker = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) / 2**33  # in [0, 0.5)
        by_pixels[_digest(_pixels(Image.open(world / "cirr" / scene["file"])))] = (facts, tie_breaker)

    def parse(text: str) -> int:
        words = [plurals.get(w, w) for w in text.lower().split()]
        shapes = [w for w in words if w in SHAPES]
        colours = [w for w in words if w in COLOURS]
        if not shapes or not colours:
            return -1
        return vocab.get(("obj", shapes[-1], colours[-1]), -1)

    class FactTextOnly(_oracle_base()):
        def processor(self):
            return OracleProcessor(parse)

        def encode_target(self, images):
            out = torch.zeros((len(images), len(vocab) + 1), dtype=torch.float64)
            for row, image in enumerate(images):
                facts, tie_breaker = by_pixels[_digest(image)]
                out[row, [vocab[f] for f in facts]] = 1.0
                out[row, -1] = tie_breaker
            return out

        def encode_query(self, batch):
            input_ids = batch["input_ids"]
            out = torch.zeros((len(input_ids), len(vocab) + 1), dtype=torch.float64)
            for row, fact in enumerate(input_ids[:, 0].tolist()):
                if fact > 0:
                    out[row, fact - 1] = 1.0
                out[row, -1] = 1.0
            return out

    return FactTextOnly()


def test_redundancy_recovers_the_truth_with_oracle_single_modality_models(world):
    from coir.eval.api import evaluate
    from coir.eval.config import EvalConfig

    config = EvalConfig(
        benchmark="cirr", data_root=str(world / "cirr"), redundancy=True, redundancy_k=[1], cache=False,
        pictures=False, device="cpu", num_workers=0,
    )  # fmt: skip
    evaluation = evaluate(
        pixel_image_only_model(),
        config,
        image_only=pixel_image_only_model(),
        text_only=fact_text_only_model(world),
    )
    summary = evaluation.redundancy["cirr/val"]
    truth = json.loads((world / "truth" / "cirr_redundancy_val.json").read_text())
    found = summary["labels@1"]
    assert summary["truth"]["matched"] == len(truth) == len(found) > 20
    # the truth labels are the world's design, not the models': each oracle solves its own queries
    for key, label in truth.items():
        if label == "image":
            assert found[key] in ("image", "either"), key
        if label == "text":
            assert found[key] in ("text", "either"), key
    # recovered shares (%) close to the truth's, over the same queries; a few "both" queries are
    # found by chance (a common fact or a near image that happens to be the target)
    shares = summary["@1"]
    truth_share = summary["truth"]["truth_share"]
    assert shares["label:image"] + shares["label:either"] == pytest.approx(truth_share["image"], abs=10)
    assert shares["label:text"] + shares["label:either"] == pytest.approx(truth_share["text"], abs=10)
    assert shares["label:both"] == pytest.approx(truth_share["both"], abs=10)
    assert summary["truth"]["redundant_share_found"] == pytest.approx(
        summary["truth"]["redundant_share_truth"], abs=10
    )
    assert summary["truth"]["agreement"] >= 85.0


def test_redundancy_labels_and_truth_agreement():
    image = np.array([0, 5, 0, 7, -1])
    text = np.array([3, 0, 0, 9, 0])
    assert labels_at(image, text, 1) == ["image", "text", "either", "both", "text"]
    summary = redundancy_summary(np.array([0, 0, 1, 2, 0]), image, text, ks=(1,))
    assert summary["@1"]["image-only"] == 40.0 and summary["@1"]["text-only"] == 60.0
    assert summary["@1"]["single-modality"] == 80.0 and summary["@1"]["composed-only"] == 0.0
    truth = {"a": "image", "b": "both", "c": "text", "d": "both"}
    compared = compare_with_truth(
        ["a", "b", "c", "d", "e"], ["image", "text", "either", "both", "both"], truth
    )
    assert compared["matched"] == 4 and compared["agreement"] == 75.0
    assert compared["redundant_share_truth"] == 50.0 and compared["redundant_share_found"] == 75.0


@pytest.mark.parametrize("name", ["cirr", "fashioniq", "lasco"])
def test_zeroshot_configs_load(name):
    from coir.common.config import load_config
    from coir.eval.config import EvalConfig, check_eval_config

    config = load_config(EvalConfig, REPO / "configs" / "zeroshot" / f"{name}.yaml", ["checkpoint=x"])
    check_eval_config(config)
    assert config.benchmark == name


@pytest.mark.parametrize("name", ["cirr_case", "fashioniq_case"])
def test_finetune_recipes_load_and_name_a_registered_validator(name):
    from coir.common.config import load_config
    from coir.eval.benchmarks import benchmark_names
    from coir.pipeline.config import TrainConfig, check_values
    from coir.pipeline.engine import find_validator

    config = load_config(TrainConfig, REPO / "configs" / "finetune" / f"{name}.yaml")
    check_values(config)
    assert config.validation.benchmark in benchmark_names() and config.validation.main_metric == "main"
    assert callable(find_validator(config))  # through the "coir.validation" entry point


def test_cli_errors_name_the_problem(world, tmp_path):
    from coir.common.errors import ConfigError, MissingInputError

    with pytest.raises(ConfigError, match="checkpoint"):
        coir_eval("--benchmark", "cirr", "--data-root", world / "cirr")
    with pytest.raises(MissingInputError, match="nowhere"):
        coir_eval("--checkpoint", tmp_path / "nowhere", "--benchmark", "cirr", "--data-root", world / "cirr")
    with pytest.raises(ConfigError, match="batch_size"):
        coir_eval(
            "--checkpoint", tmp_path, "--benchmark", "cirr", "--data-root", world / "cirr", "batch_size=0"
        )


@pytest.mark.parametrize("memory_gb", [1.0, 1e-7])  # one block; 1 query x 6 candidates at a time
def test_case_ranking_under_a_memory_budget_equals_the_full_dot_product_sort(world, export, memory_gb):
    """The CASE path before model states and memory budgets: embed, score the whole query x gallery
    dot-product matrix, stable-sort each row. Rankings and metrics must be the same, chunked or not."""
    from test_eval_metrics import _reference_ranking

    from coir.eval.api import load_model
    from coir.eval.benchmarks.cirr import cirr_metrics, cirr_task
    from coir.eval.config import EvalConfig
    from coir.eval.encode import encode_images, encode_queries
    from coir.eval.runner import run_task

    model = load_model(export)
    # Embeddings on a grid of 1/64: every dot product is then exact in float32 whatever the kernel or
    # the chunk shape sums it with, so near-ties cannot flip between the two paths (exact ties remain,
    # broken by the lower index in both).
    for method in ("encode_query", "encode_target"):
        setattr(model, method, lambda x, encode=getattr(model, method): torch.round(encode(x) * 64) / 64)
    task = cirr_task(world / "cirr", "val")
    with torch.no_grad():
        gallery = encode_images(model, task.gallery_paths)
        queries = encode_queries(
            model, [q.reference_path for q in task.queries], [q.text for q in task.queries]
        )
    scores = queries @ gallery.T
    targets = [task.index_of(q.target) for q in task.queries]
    exclude = [[task.index_of(n) for n in q.exclude] for q in task.queries]
    subsets = [[task.index_of(n) for n in q.subset] for q in task.queries]
    tops, target_ranks, _, subset_ranks = _reference_ranking(scores, 50, targets, exclude, subsets)
    result = run_task(model, task, EvalConfig(memory_gb=memory_gb, num_workers=0, device="cpu"))
    assert np.array_equal(result.ranking.top_indices, tops)
    assert np.array_equal(result.ranking.target_rank, target_ranks)
    assert np.array_equal(result.ranking.subset_target_rank, subset_ranks)
    expected = cirr_metrics(np.array(target_ranks), np.array(subset_ranks), task.ks, task.subset_ks)
    assert {k: v for k, v in result.metrics.items() if k in expected} == expected


def test_launch_eval_local_sweep_evaluates_with_its_options(world, export, tmp_path, monkeypatch):
    """`coir launch eval --cluster local` runs the cell as a process of its own; the options given to
    the launch reach it: FashionIQ with both caption orders counts every triplet twice, and the
    numbers are those of `coir eval` with the same options."""
    from launch_helpers import coir_launch

    from coir.launch.api import model_names

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    options = ["--no-cache", "--num-workers", "0", "--no-pictures", "--categories", "dress"]
    options += ["--caption-orders", "both"]
    run = tmp_path / "sweep"
    code, out = coir_launch(
        "eval", "--checkpoints", export, "--benchmarks", "fashioniq", "--data-root", world, *options,
        "mask_reference=true", "memory_gb=0.5", "--cluster", "local", "--run-dir", run, "--wait",
    )  # fmt: skip
    assert code == 0, out
    launched = json.loads((run / "results.json").read_text())["fashioniq-dress/val"][model_names([export])[0]]
    triplets = json.loads((world / "fashioniq" / "captions" / "cap.dress.val.json").read_text())
    assert launched["queries"] == 2 * len(triplets) > 0
    direct = tmp_path / "direct"
    code = coir_eval(
        "--checkpoint", export, "--benchmark", "fashioniq", "--data-root", world / "fashioniq",
        "--out", direct, "--device", "cpu", "--mask-reference", *options,
    )  # fmt: skip
    assert code == 0
    assert json.loads((direct / "results.json").read_text())["fashioniq-dress/val"]["case"] == launched


def test_a_new_benchmark_is_one_class(world, export, tmp_path, monkeypatch):
    """A benchmark registered at run time (here two tasks over the CIRR files) gets its option flag,
    evaluate(), its summary row, submissions, redundancy truth and the validator, with no other change."""
    import dataclasses

    from coir.eval.api import evaluate, load_model
    from coir.eval.benchmarks import base
    from coir.eval.benchmarks.cirr import cirr_task
    from coir.eval.config import option
    from coir.eval.validation import validator_for

    @dataclasses.dataclass
    class ToyOptions:
        first_queries: int = option(0, "toy: only the first N queries of each part (0: all)")

    class Toy(base.Benchmark):
        name, splits, Options = "toy", ("val",), ToyOptions

        def tasks(self, config):
            n = self.options(config).first_queries
            whole = cirr_task(config.data_root, config.split)
            halves = {"a": whole.queries[0::2], "b": whole.queries[1::2]}
            return [
                dataclasses.replace(
                    whole, benchmark="toy", name=f"toy-{p}/val", queries=q[:n] if n else q, ks=(1, 5), part=p
                )
                for p, q in halves.items()
            ]

        def summary(self, per_task):
            return {"R@5": min(m["R@5"] for m in per_task), "queries": sum(m["queries"] for m in per_task)}

        def main_measure(self, metrics):
            return metrics["R@5"]

        def write_submissions(self, result, out_dir):
            out_dir.mkdir(parents=True, exist_ok=True)
            path = out_dir / f"toy-{result.task.part}-{result.model_name}.txt"
            path.write_text("\n".join(q.key for q in result.task.queries))
            return [path]

        def truth_file(self, task):
            return "cirr_redundancy_val.json"

    base.benchmark_names()  # the package's modules are discovered first
    monkeypatch.setitem(base._REGISTRY, "toy", Toy())
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = ["--checkpoint", export, "--benchmark", "toy", "--data-root", world / "cirr", "--out", tmp_path]
    args += ["--first-queries", "5", "--redundancy", "--no-cache", "--num-workers", "0"]
    config = cli.build_config(parser.parse_args([str(a) for a in args]))
    assert config.options == {"toy": {"first_queries": 5}}
    fragment = evaluate(export, config).fragment
    assert set(fragment) == {"toy-a/val", "toy-b/val", "toy/val"}
    # the default metrics: R@k (and the protocol of the CIRR task it was made from)
    assert fragment["toy-a/val"]["case"].keys() == {"R@1", "R@5", "queries", "reference"}
    assert fragment["toy/val"]["case"]["queries"] == 10
    assert fragment["toy/val"]["case"]["R@5"] == min(fragment[f"toy-{p}/val"]["case"]["R@5"] for p in "ab")
    captions = json.loads((world / "cirr" / "captions" / "cap.rc2.val.json").read_text())
    submitted = (tmp_path / "submissions" / "toy-b-case-text-only.txt").read_text().split()
    assert submitted == [str(c["pairid"]) for c in captions[1::2][:5]]
    assert json.loads((tmp_path / "redundancy.json").read_text())["toy-a/val"]["truth"]["matched"] == 5
    validated = validator_for("toy")(load_model(export), str(world / "cirr"), "val", "cpu")
    assert validated["main"] == validated["R@5"] and "b/R@1" in validated


def test_eval_appends_to_the_card_and_takes_the_model_name_from_it(world, export, tmp_path):
    import shutil

    mine = tmp_path / "export"
    shutil.copytree(export, mine)
    card = json.loads((mine / "coir_card.json").read_text())
    (mine / "coir_card.json").write_text(json.dumps(card | {"model_name": "my-case", "evaluations": []}))
    out = tmp_path / "out"
    args = ["--checkpoint", mine, "--benchmark", "cirr", "--data-root", world / "cirr", "--out", out]
    args += ["--no-cache", "--num-workers", "0", "--no-pictures"]
    assert coir_eval(*args) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["cirr/val"]) == {"my-case"}
    assert all("my-case" in p.name for p in (out / "submissions").rglob("*") if p.is_file())
    assert coir_eval(*args, "--model-name", "given") == 0
    assert set(json.loads((out / "results.json").read_text())["cirr/val"]) == {"my-case", "given"}
    evaluations = json.loads((mine / "coir_card.json").read_text())["evaluations"]
    assert [e["benchmark"] for e in evaluations] == ["cirr", "cirr"]
    # results.json rounds to 4 decimals; the card keeps the full values
    assert evaluations[0]["results"]["cirr/val"]["my-case"] == pytest.approx(
        results["cirr/val"]["my-case"], abs=1e-4
    )
    assert list(evaluations[1]["results"]["cirr/val"]) == ["given"]
