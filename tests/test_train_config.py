"""Training config: bad keys, types and paths fail at start naming them; schedule, groups, pruning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_train_support import REPO, write_manifest, write_shards

from coir.common.errors import ConfigError, MissingInputError
from coir.pipeline import checkpoint
from coir.pipeline.config import TrainConfig, check_paths, load_train_config, resolve_shards
from coir.pipeline.engine import WarmupCosine, deepspeed_config, find_validator, param_groups
from coir.pipeline.train_cli import main as train_main


@pytest.fixture()
def recipe(tmp_path: Path) -> Path:
    write_shards(tmp_path / "shards", shards=2, per_shard=2)
    (tmp_path / "tok").mkdir()
    path = tmp_path / "recipe.yaml"
    path.write_text(
        f"run_dir: {tmp_path / 'run'}\nmodel:\n  tokenizer: {tmp_path / 'tok'}\n"
        f"data:\n  shards: [{tmp_path / 'shards'}]\n"
    )
    return path


@pytest.mark.parametrize(
    "recipe_file",
    sorted([*(REPO / "configs" / "pretrain").glob("*.yaml"), *(REPO / "configs" / "methods").glob("*.yaml")]),
    ids=lambda p: p.name,
)
def test_shipped_recipes_load(recipe_file: Path) -> None:
    config = load_train_config(recipe_file)
    assert isinstance(config, TrainConfig) and config.optim.total_steps > 0


@pytest.mark.parametrize(
    "stage2_file", sorted((REPO / "configs" / "methods").glob("*_stage2.yaml")), ids=lambda p: p.name
)
def test_two_stage_recipes_agree_on_the_architecture(stage2_file: Path) -> None:
    """Stage 2 starts from stage 1's export (model.init_from), which refuses another architecture, and
    from its optimizer state, which stage 1 must write."""
    from coir.pipeline.models.components.word_model import WORD_ARCHITECTURE

    stage1 = load_train_config(stage2_file.with_name(stage2_file.name.replace("_stage2", "")))
    stage2 = load_train_config(stage2_file)
    assert stage1.model.family == stage2.model.family
    for key in (*WORD_ARCHITECTURE, "pooling", "cross_level", "fusion_gate", "attention"):
        assert getattr(stage1.model, key, None) == getattr(stage2.model, key, None), key
    assert stage1.checkpoint.optimizer_by_name and stage1.model.freeze_backbone
    assert not stage2.model.freeze_backbone and not stage2.model.freeze_word_embeddings
    assert (stage1.data.batch_size, stage1.validation.benchmark) == (
        stage2.data.batch_size,
        stage2.validation.benchmark,
    )


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("optim.lrr=1", "optim.lrr"),
        ("data.batch_size=many", "data.batch_size"),
        ("deepspeed.zero_stage=3", "deepspeed.zero_stage"),
        ("optim.warmup_steps=-1", "optim.warmup_steps"),
        ("bogus=1", "bogus"),
        ("model.reverse_weigth=1", "model.reverse_weigth"),
        ("model.temperature=hot", "model.temperature"),
        ("model.family=nosuch", "model.family"),
        ("model.name=tirg", "model.name"),
        # values that passed validation and failed after the model was built, or never
        ("data.prefetch_factor=0", "data.prefetch_factor"),
        ("optim.betas=[0.9,2.0]", "optim.betas"),
        ("optim.betas=[-0.1,0.999]", "optim.betas"),
        ("data.shuffle_initial=-1", "data.shuffle_initial"),
        ("data.shuffle_initial=2000", "data.shuffle_initial"),  # above data.shuffle_buffer (1000)
        ("data.draft_size=0", "data.draft_size"),
        ("data.image_mode=XYZ", "data.image_mode"),
        ("data.max_bad_share=1.5", "data.max_bad_share"),
        ("optim.eps=0", "optim.eps"),
        ("optim.weight_decay=-0.01", "optim.weight_decay"),
    ],
)
def test_bad_keys_and_values_are_named(recipe: Path, override: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_train_config(recipe, [override])


def test_model_section_is_the_family_config(recipe: Path) -> None:
    from coir.pipeline.models.blip.config import BlipModelConfig

    config = load_train_config(recipe, ["model.reverse_weight=0"])
    assert isinstance(config.model, BlipModelConfig)
    assert (config.model.family, config.model.name, config.model.reverse_weight) == ("blip", "case", 0.0)


def test_missing_paths_are_named(recipe: Path, tmp_path: Path) -> None:
    config = load_train_config(recipe)
    assert len(check_paths(config)) == 2
    for override, named in [
        (f"data.shards=[{tmp_path / 'nowhere'}]", "nowhere"),
        (f"data.shards=['{tmp_path}/shards/x-{{000000..000001}}.tar']", "x-000000.tar"),
        (f"model.tokenizer={tmp_path / 'no_tok'}", "no_tok"),
        (f"checkpoint.resume={tmp_path / 'run' / 'checkpoints' / 'step_00000009'}", "step_00000009"),
    ]:
        with pytest.raises(MissingInputError, match=named):
            check_paths(load_train_config(recipe, [override]))


def test_cli_reports_the_key_and_exits_2(recipe: Path, capsys) -> None:
    assert train_main([str(recipe), "optim.nope=1"]) == 2
    assert "optim.nope" in capsys.readouterr().err


@pytest.mark.parametrize(
    "override", ["data.prefetch_factor=0", "optim.betas=[0.9,2.0]", "data.shuffle_initial=-5"]
)
def test_bad_value_stops_the_cli_before_anything_is_built(recipe: Path, override: str, capsys) -> None:
    assert train_main([str(recipe), override]) == 2
    err = capsys.readouterr().err
    assert err.startswith("coir: error: key") and override.split("=")[0] in err and "Traceback" not in err
    assert not (recipe.parent / "run").exists()  # no run folder, log or checkpoint was made


def test_resume_path_without_complete_checkpoint_is_refused(tmp_path: Path) -> None:
    (tmp_path / "step_00000004").mkdir()  # a checkpoint killed while being written: no trainer.json
    with pytest.raises(MissingInputError, match="trainer.json"):
        checkpoint.resolve_resume(str(tmp_path / "step_00000004"), tmp_path)
    assert checkpoint.resolve_resume("auto", tmp_path) is None


def test_unregistered_validator_names_the_key(recipe: Path, tmp_path: Path) -> None:
    config = load_train_config(recipe, ["validation.benchmark=nosuch", f"validation.data_root={tmp_path}"])
    with pytest.raises(ConfigError, match="validation.benchmark"):
        find_validator(config)


def test_manifest_folder_lists_its_shards(tmp_path: Path) -> None:
    paths = write_shards(tmp_path, shards=3, per_shard=1)
    write_manifest(tmp_path, paths[:2], per_shard=1)
    assert resolve_shards([str(tmp_path)]) == [str(p) for p in paths[:2]]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["shards"].append({**manifest["shards"][0], "name": "gone.tar"})
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="gone.tar is missing"):
        resolve_shards([str(tmp_path)])


def test_keep_last_k_pruning(tmp_path: Path) -> None:
    for step in (2, 4, 6, 8, 10):
        folder = tmp_path / checkpoint.tag_of(step)
        folder.mkdir()
        if step != 6:
            (folder / checkpoint.MARKER).write_text("{}")
    (tmp_path / checkpoint.tag_of(12)).mkdir()  # newer, incomplete (being written): left alone
    checkpoint.prune(tmp_path, keep_last=2)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [checkpoint.tag_of(8), checkpoint.tag_of(10), checkpoint.tag_of(12)]
    assert checkpoint.newest(tmp_path) == tmp_path / checkpoint.tag_of(10)


def test_schedule_warms_up_then_decays_to_min() -> None:
    schedule = WarmupCosine(warmup=4, total=20, min_ratio=0.1)
    values = [schedule(s) for s in range(21)]
    assert values[:4] == sorted(values[:4]) and values[3] < 1.0 and values[4] == pytest.approx(1.0)
    assert values[4:] == sorted(values[4:], reverse=True) and values[20] == pytest.approx(0.1)


def test_no_weight_decay_for_biases_norms_embeddings_and_temperature() -> None:
    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(10, 4)
            self.position_embedding = torch.nn.Parameter(torch.zeros(1, 3, 4))
            self.proj = torch.nn.Linear(4, 4)
            self.norm = torch.nn.LayerNorm(4)
            self.temp = torch.nn.Parameter(torch.tensor(0.07))
            self.frozen = torch.nn.Linear(4, 4).requires_grad_(False)

    decay, no_decay = param_groups(Tiny(), 0.05)
    assert decay["names"] == ["proj.weight"] and decay["weight_decay"] == 0.05
    assert set(no_decay["names"]) == {
        "embed.weight",
        "position_embedding",
        "proj.bias",
        "norm.weight",
        "norm.bias",
        "temp",
    }
    assert no_decay["weight_decay"] == 0.0


def test_deepspeed_config_is_explicit(recipe: Path) -> None:
    config = load_train_config(
        recipe, ["optim.grad_accumulation=3", "optim.grad_clip=0.5", "data.batch_size=4"]
    )
    ds = deepspeed_config(config, world_size=2, bf16=False)
    assert ds["train_batch_size"] == 24 and ds["gradient_accumulation_steps"] == 3
    assert ds["gradient_clipping"] == 0.5 and ds["zero_optimization"]["stage"] == 2
    assert ds["bf16"]["enabled"] is False and "optimizer" not in ds and "scheduler" not in ds


DIST_VARS = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
    "SUBMITIT_EXECUTOR",
    "SLURM_STEP_ID",
    "SLURM_PROCID",
    "SLURM_NTASKS",
    "SLURM_STEP_NUM_TASKS",
    "SLURM_LOCALID",
    "SLURM_STEP_NODELIST",
    "SLURM_NODELIST",
    "SLURM_JOB_ID",
)


def test_ranks_from_torchrun_slurm_or_nothing(monkeypatch) -> None:
    from coir.pipeline import distributed

    for name in DIST_VARS:
        monkeypatch.delenv(name, raising=False)
    single = distributed.detect()
    assert (single.rank, single.world_size, single.source) == (0, 1, "single")

    monkeypatch.setenv("SLURM_JOB_ID", "4321")
    monkeypatch.setenv("SLURM_PROCID", "5")  # an sbatch script without srun is not a task of a step
    assert distributed.detect().source == "single"
    monkeypatch.setenv("SLURM_STEP_ID", "0")
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "16")
    monkeypatch.setenv("SLURM_LOCALID", "1")
    monkeypatch.setenv("SLURM_STEP_NODELIST", "gpu[012-013],gpu020")
    slurm = distributed.detect()
    assert (slurm.rank, slurm.world_size, slurm.local_rank, slurm.source) == (5, 16, 1, "slurm")
    assert slurm.master_addr == "gpu012" and slurm.master_port == 20000 + 4321

    monkeypatch.setenv("RANK", "1")  # torchrun / the deepspeed launcher win over SLURM_*
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("MASTER_PORT", "29999")
    env = distributed.detect()
    assert (env.rank, env.world_size, env.local_rank, env.master_port, env.source) == (1, 2, 1, 29999, "env")


@pytest.mark.parametrize(
    ("nodelist", "first"), [("node7", "node7"), ("a1,b2", "a1"), ("n[003-005,9]", "n003"), ("x[1-2],y", "x1")]
)
def test_first_host_of_a_nodelist(nodelist: str, first: str, monkeypatch) -> None:
    from coir.pipeline import distributed

    monkeypatch.setenv("PATH", "/nonexistent")  # no scontrol: the parser answers
    assert distributed.first_host(nodelist) == first


def _complete_checkpoint(folder: Path, step: int) -> Path:
    path = folder / checkpoint.tag_of(step)
    path.mkdir(parents=True)
    (path / "mp_rank_00_model_states.pt").write_bytes(b"weights of an earlier run")
    (path / checkpoint.MARKER).write_text(json.dumps({"step": step}))
    return path


def test_fresh_run_into_a_folder_with_checkpoints_is_refused(recipe: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "run" / "checkpoints"
    (folder / checkpoint.tag_of(12)).mkdir(parents=True)  # incomplete: no reason to refuse
    checkpoint.refuse_fresh_start_over(None, folder)
    old = _complete_checkpoint(folder, 8)
    for resume in ("auto", str(old)):
        checkpoint.refuse_fresh_start_over(resume, folder)
    with pytest.raises(ConfigError, match="--resume auto") as refused:
        checkpoint.refuse_fresh_start_over(None, folder)
    assert str(folder) in str(refused.value) and "run_dir" in str(refused.value)
    # through the CLI: exit 2 before any process group or model is built; the old run is untouched
    assert train_main([str(recipe)]) == 2
    assert str(folder) in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == [checkpoint.tag_of(8), checkpoint.tag_of(12)]
    assert json.loads((old / checkpoint.MARKER).read_text()) == {"step": 8}


class _FakeEngine:
    """Stands in for a DeepSpeed engine: save_checkpoint writes one file (or fails, as a crash would)."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.marker_present: list[bool] = []

    def save_checkpoint(self, directory: str, tag: str, client_state: dict) -> None:
        path = Path(directory) / tag
        self.marker_present.append((path / checkpoint.MARKER).exists())
        if self.fail:
            raise RuntimeError("killed while saving")
        path.mkdir(exist_ok=True)
        (path / "mp_rank_00_model_states.pt").write_bytes(json.dumps(client_state).encode())


def test_saving_over_an_old_folder_of_the_same_step_marks_it_incomplete_first(tmp_path: Path) -> None:
    old = _complete_checkpoint(tmp_path, 4)
    # a crash while DeepSpeed writes must not leave the old trainer.json beside new files
    crashing = _FakeEngine(fail=True)
    with pytest.raises(RuntimeError):
        checkpoint.save(crashing, tmp_path, 4, {"step": 4, "run": "new"}, {"rng": None}, 0, keep_last=2)
    assert crashing.marker_present == [False]
    assert checkpoint.complete(tmp_path) == [] and checkpoint.newest(tmp_path) is None

    engine = _FakeEngine()
    path = checkpoint.save(engine, tmp_path, 4, {"step": 4, "run": "new"}, {"rng": None}, 0, keep_last=2)
    assert path == old and engine.marker_present == [False]
    assert json.loads((path / checkpoint.MARKER).read_text()) == {"step": 4, "run": "new"}
    assert torch.load(path / "rank_00000.pt", weights_only=False) == {"rng": None}
    assert checkpoint.complete(tmp_path) == [path]
