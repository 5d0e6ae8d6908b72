"""Frozen-part features: `coir data features` writes them once, training on them equals training on the
images, and evaluation runs the frozen CNN once per image list whatever the checkpoint."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from lasco_fixture import run_command
from test_train_support import (
    child_env,
    make_vocabulary,
    read_jsonl,
    tiny_artemis,
    train_command,
    write_recipe,
    write_shards,
)

from coir.common.errors import ConfigError

FROZEN = {"freeze_backbone": True, "pooling": "avg"}


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> dict[str, Path]:
    """Triplet shards, a vocabulary and a frozen-backbone ARTEMIS recipe (seed 7) over them."""
    work = tmp_path_factory.mktemp("features")
    write_shards(work / "shards", shards=2, per_shard=16, corrupt=((1, 3),))
    vocab = make_vocabulary(work / "vocab")
    recipe = write_recipe(
        work,
        work / "shards",
        None,
        model=tiny_artemis(vocab, **FROZEN),
        **{"deepspeed.zero_stage": 0, "data.num_workers": 0, "optim.total_steps": 4},
    )
    return {"work": work, "shards": work / "shards", "vocab": vocab, "recipe": recipe}


def _features(recipe: Path, shards: Path, out: Path, *extra: str) -> int:
    return run_command(
        "coir.pipeline.features_cli",
        [
            str(recipe),
            *extra,
            "--shards",
            str(shards),
            "--out",
            str(out),
            "--batch-size",
            "5",
            "--no-progress",
        ],
    )


def _members(tar_path: Path) -> dict[str, dict[str, bytes]]:
    samples: dict[str, dict[str, bytes]] = {}
    with tarfile.open(tar_path) as tar:
        for member in tar:
            key, _, field = member.name.partition(".")
            samples.setdefault(key, {})[field] = tar.extractfile(member).read()
    return samples


@pytest.fixture(scope="module")
def feature_shards(source) -> Path:
    out = source["work"] / "feature_shards"
    assert _features(source["recipe"], source["shards"], out) == 0
    return out


def test_feature_shards_hold_the_frozen_part_of_each_image(source, feature_shards):
    import numpy as np
    import torch
    from PIL import Image

    model = _model(source["recipe"])
    frozen = model.frozen_image_features()
    manifest = json.loads((feature_shards / "manifest.json").read_text())
    assert manifest["features"]["identity"] == frozen.identity
    assert "dataset" not in manifest  # the source shards (written by hand here) have no manifest
    assert manifest["num_samples"] == 31 and manifest["num_errors"] == 1  # the corrupt JPEG is recorded

    processor = model.processor()
    for name in ("triplets-000000.tar", "triplets-000001.tar"):
        given, written = _members(source["shards"] / name), _members(feature_shards / name)
        assert list(written) == [key for key in given if key != "s01_0003"]  # same order, bad one out
        for key, sample in written.items():
            assert set(sample) == {"query.npy", "target.npy", "txt", "json"}
            assert sample["txt"] == given[key]["txt"] and sample["json"] == given[key]["json"]
            for role in ("query", "target"):
                stored = np.load(io.BytesIO(sample[f"{role}.npy"]))
                with Image.open(io.BytesIO(given[key][f"{role}.jpg"])) as img:
                    image = processor.normalize(processor.image(img.convert("RGB")))
                with torch.no_grad():
                    expected = frozen.module(image[None])[0].numpy()
                assert stored.dtype == np.float32 and stored.shape == (512,)
                # stored: computed in batches; expected: one image at a time, whose convolutions may
                # accumulate in another order (1.5e-6 apart seen on an AMD EPYC)
                np.testing.assert_allclose(stored, expected, rtol=1e-5, atol=1e-5)


def test_a_second_run_writes_nothing_and_another_model_is_refused(source, feature_shards, capsys):
    before = (feature_shards / "triplets-000000.tar").stat().st_mtime_ns
    capsys.readouterr()
    assert _features(source["recipe"], source["shards"], feature_shards) == 0
    err = capsys.readouterr().err
    report = json.loads(err[err.index("{") :])["report"]
    assert report == {"shards_written": 0, "images_encoded": 0, "memo_hits": 0}
    assert (feature_shards / "triplets-000000.tar").stat().st_mtime_ns == before
    # another seed is another random backbone, so other features: the folder is not reused
    assert _features(source["recipe"], source["shards"], feature_shards, "seed=8") == 2
    assert "already holds a finished build made with other inputs" in capsys.readouterr().err


def test_images_met_again_go_through_the_frozen_part_once(source, tmp_path, capsys):
    """An image met again (a CIRR reference in several triplets) is encoded once: the 31 good triplets'
    62 images are drawings of 3 shapes x 6 colours, at most 18 distinct JPEGs."""
    capsys.readouterr()
    assert _features(source["recipe"], source["shards"], tmp_path / "out") == 0
    err = capsys.readouterr().err
    report = json.loads(err[err.index("{") :])["report"]
    assert report["shards_written"] == 2
    assert report["images_encoded"] <= 18 and report["memo_hits"] > 0


def test_the_trainer_checks_what_the_shards_hold(source, feature_shards, tmp_path):
    from coir.pipeline import engine
    from coir.pipeline.config import load_train_config
    from coir.pipeline.features import check_inputs
    from coir.pipeline.models.registry import build_model

    def model(*overrides: str):
        config = load_train_config(source["recipe"], list(overrides))
        engine._seed_all(config.seed)
        return build_model(config.model)

    features = [str(p) for p in sorted(feature_shards.glob("*.tar"))]
    images = [str(p) for p in sorted(source["shards"].glob("*.tar"))]
    check_inputs(features, model(), "features")  # the same recipe: accepted
    with pytest.raises(ConfigError, match="'data.inputs'.*holds frozen-part features"):
        check_inputs(features, model(), "images")
    with pytest.raises(ConfigError, match="'data.inputs'.*describes image shards"):
        check_inputs(images, model(), "features")
    bare = tmp_path / "bare"  # shards listed by path in a folder without a manifest
    bare.mkdir()
    for image_shard in images:
        shutil.copy(image_shard, bare)
    with pytest.raises(ConfigError, match="'data.shards'.*has no manifest.json"):
        check_inputs([str(p) for p in sorted(bare.glob("*.tar"))], model(), "features")
    with pytest.raises(ConfigError, match="'data.shards'.*another frozen image part.*pooling"):
        check_inputs(features, model("model.pooling=gem"), "features")
    with pytest.raises(ConfigError, match="'data.inputs'.*no frozen image part|'data.inputs'.*whole image"):
        check_inputs(features, model("model.freeze_backbone=false"), "features")


def test_training_on_features_equals_training_on_the_images(source, feature_shards, tmp_path):
    """Same seed, same sample stream: the losses of every step and the trained weights agree (the frozen
    CNN is in eval mode, so its output does not depend on the batch it ran in). On the clean shard: a
    corrupt sample is dropped by coir data features but met (and skipped) by the image stream, which
    moves the shuffle buffer."""
    import torch

    from coir.pipeline.models.export import load_export

    runs = {}
    clean = "triplets-000000.tar"  # a corrupt sample (shard 1) would shift the shuffle of the image stream
    for inputs, shards in (("images", source["shards"] / clean), ("features", feature_shards / clean)):
        run = tmp_path / inputs
        args = [
            f"run_dir={run}",
            f"data.inputs={inputs}",
            f"data.shards=[{shards}]",
            "checkpoint.every_steps=0",
        ]
        result = subprocess.run(
            train_command(source["recipe"], *args),
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        runs[inputs] = run
    losses = {
        k: [r["loss"] for r in read_jsonl(run / "logs" / "train.jsonl") if "loss" in r]
        for k, run in runs.items()
    }
    assert len(losses["images"]) == 4 and len(set(losses["images"])) > 1
    assert losses["features"] == pytest.approx(losses["images"], rel=1e-4)
    weights = {k: load_export(run / "export").state_dict() for k, run in runs.items()}
    for name, value in weights["images"].items():
        assert torch.allclose(weights["features"][name], value, atol=1e-5), name
    initial = _initial_weights(source["recipe"])
    assert (
        weights["images"]["image_encoder.fc.weight"] - initial["image_encoder.fc.weight"]
    ).abs().max() > 1e-3


def _initial_weights(recipe: Path) -> dict:
    return _model(recipe).state_dict()


def _cnn_images(model) -> list[int]:
    """Counts the images that go through the model's CNN (a list, appended to by a forward hook)."""
    seen: list[int] = []
    model.image_encoder.cnn.register_forward_hook(lambda module, args, out: seen.append(args[0].shape[0]))
    return seen


def test_evaluation_runs_the_frozen_cnn_once_per_image_list(source, tmp_path_factory, tmp_path, monkeypatch):
    """CIRR val of the tiny world from cached features gives the image path's rankings; a second
    checkpoint with the same backbone (another head) and a rerun without a cache folder (the trainer's
    validation) run no image through the CNN."""
    import numpy as np
    import torch
    from synth_fixture import built_world

    from coir.eval.benchmarks.cirr import cirr_task
    from coir.eval.config import EvalConfig
    from coir.eval.runner import run_task

    task = cirr_task(built_world(tmp_path_factory) / "cirr", "val")
    config = EvalConfig(batch_size=8, num_workers=0, device="cpu")
    distinct = len(set(task.gallery_paths) | {q.reference_path for q in task.queries})

    def image_path_result(model):
        with monkeypatch.context() as patch:
            patch.setattr(model, "frozen_image_features", lambda: None)
            return run_task(model, task, config)

    model = _model(source["recipe"])
    seen = _cnn_images(model)
    by_features = run_task(model, task, config, cache_dir=tmp_path / "cache")
    assert sum(seen) == distinct and len(list((tmp_path / "cache").glob("features-*.pt"))) >= 1
    by_images = image_path_result(model)
    assert np.array_equal(by_features.ranking.top_indices, by_images.ranking.top_indices)
    assert by_features.metrics == by_images.metrics

    other = _model(source["recipe"])
    with torch.no_grad():
        other.image_encoder.fc.weight.mul_(-1.0)  # another head on the same backbone
    seen_other = _cnn_images(other)
    second = run_task(other, task, config, cache_dir=tmp_path / "cache")
    assert sum(seen_other) == 0
    assert second.metrics == image_path_result(other).metrics
    assert not np.array_equal(second.ranking.top_indices, by_features.ranking.top_indices)

    seen.clear()
    run_task(model, task, config)
    run_task(model, task, config)  # in-process memory for a run without cache folder
    assert sum(seen) == distinct


def _model(recipe: Path):
    from coir.pipeline import engine
    from coir.pipeline.config import load_train_config
    from coir.pipeline.models.registry import build_model

    config = load_train_config(recipe, [])
    engine._seed_all(config.seed)
    return build_model(config.model).eval()
