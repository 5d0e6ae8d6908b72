"""`coir launch` against a real one-node SLURM started for this module (coir.launch.testbed).

SLURM and munge come from launch/testbed/install_slurm.sh (`make test` runs it; the fixture runs it
too when a binary is missing). The tests skip only where SLURM cannot run at all: the binaries are
missing and cannot be installed (not root, no apt-get, no reachable repository). Installed daemons
that do not come up fail the tests, with their log tails. The daemons, their config, state and logs
live in a temporary folder; they and every job process are gone at the end (checked).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from launch_helpers import TESTBED_CLUSTER, coir_launch, folder_digest, launch_parser

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

WAIT_S = 600  # per job, on a loaded 2-core machine (pytest's timeout is 900 s per test)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    from coir.launch.testbed import SlurmStartFailed, SlurmTestbed, SlurmUnavailable

    testbed = SlurmTestbed(tmp_path_factory.mktemp("slurm"))
    try:
        testbed.start()
    except SlurmUnavailable as error:
        pytest.skip(f"SLURM cannot run on this machine: {error}")
    except SlurmStartFailed as error:
        pytest.fail(f"SLURM is installed but did not start: {error}", pytrace=False)
    try:
        testbed.start_releasing()  # requeued jobs would otherwise wait ~2 min (BeginTime)
        yield testbed
    finally:
        testbed.stop()
    left = testbed.leftovers()
    assert not left, f"testbed processes still running after stop(): {left}"


@pytest.fixture(scope="module", autouse=True)
def job_env():
    """What the jobs inherit through sbatch (--export=ALL): one thread each, no DeepSpeed op builds."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {
            "OMP_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "DS_BUILD_OPS": "0",
            "DS_SKIP_CUDA_CHECK": "1",
            "PYTHONUNBUFFERED": "1",
        }.items():
            patch.setenv(key, value)
        for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
            patch.delenv(key, raising=False)
        yield


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    """A tiny CASE recipe over tiny shapes shards and a tiny tokenizer (the training tests' helpers)."""
    from test_train_support import make_tokenizer, write_recipe, write_shards

    tmp = tmp_path_factory.mktemp("recipe")
    write_shards(tmp / "shards")
    tokenizer = make_tokenizer(tmp / "tokenizer")
    return write_recipe(tmp, tmp / "shards", tokenizer)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    from coir.datasets.synth.build import build_world

    out = tmp_path_factory.mktemp("world")
    build_world(out, seed=0, scale="tiny", progress=False)
    return out


def submitted(output: str) -> str:
    line = next(line for line in output.splitlines() if " job " in line)
    return line.split(" job ")[1].split()[0]


@pytest.fixture(scope="module")
def pretrained(slurm, recipe, tmp_path_factory):
    """`coir launch train` of 2 ranks x 4 steps, waited for: (run dir, printed output, submission)."""
    from coir.launch.api import load_submission

    run = tmp_path_factory.mktemp("pretrain") / "run"
    code, out = coir_launch(
        "train",
        recipe,
        "optim.total_steps=4",
        "checkpoint.every_steps=0",
        "--cluster-config",
        TESTBED_CLUSTER,
        "--tasks-per-node",
        "2",
        "--run-dir",
        run,
    )
    assert code == 0, out
    submission = load_submission(run)
    submission.wait(timeout_s=WAIT_S)
    return run, out, submission


def test_two_task_case_pretraining_sees_world_size_2(pretrained):
    run, out, submission = pretrained
    assert str(run) in out and "_0_log.out" in out and submitted(out).isdigit()
    ranks = submission.task_results(0)
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all(r["world_size"] == 2 and r["status"] == "completed" and r["step"] == 4 for r in ranks)
    assert ranks[0]["samples_seen"] == 4 * 8 * 2  # steps x batch per rank x the world the trainer saw
    assert (Path(ranks[0]["export_dir"]) / "model.safetensors").is_file()

    code, out = coir_launch("status", run)
    assert code == 0 and "COMPLETED" in out and "train" in out
    code, out = coir_launch("logs", run, "--task", "1", "--err")
    assert code == 0 and "RANK=1 WORLD_SIZE=2" in out


def _steps(path: Path) -> list[int]:
    return [json.loads(line)["step"] for line in path.read_text().splitlines() if '"step"' in line]


def test_usr2_checkpoints_requeues_and_finishes_every_step_once(slurm, recipe, tmp_path, monkeypatch):
    from coir.launch.api import load_submission

    monkeypatch.setenv("COIR_TRAIN_STEP_DELAY", "0.5")  # slow steps: the signal lands mid-run
    run = tmp_path / "run"
    total = 20  # the signal goes out after step 2: ~9 s of steps left for it to arrive
    code, out = coir_launch(
        "train",
        recipe,
        f"optim.total_steps={total}",
        "checkpoint.every_steps=0",
        "logging.every_steps=1",
        "--cluster-config",
        TESTBED_CLUSTER,
        "--tasks-per-node",
        "2",
        "--run-dir",
        run,
    )
    assert code == 0, out
    job_id = submitted(out)
    log = run / "logs" / "train.jsonl"
    deadline = time.monotonic() + WAIT_S
    while not (log.is_file() and len(_steps(log)) >= 2):
        assert time.monotonic() < deadline, "training did not reach step 2"
        time.sleep(0.5)
    signal = subprocess.run(["scancel", "--signal=USR2", job_id], capture_output=True, text=True)
    at_signal = _steps(log)
    if signal.returncode != 0 or len(at_signal) >= total:
        pytest.fail(
            f"the job ended before the signal arrived (steps logged: {at_signal[-1:]} of {total}; "
            f"scancel: {signal.returncode} {signal.stderr.strip()}): the test proves nothing; slow the steps",
            pytrace=False,
        )

    [result] = load_submission(run).wait(timeout_s=WAIT_S)
    err = (run / "submitit" / f"{job_id}_0_log.err").read_text()
    saved = sorted(int(p.name.split("_")[-1]) for p in (run / "checkpoints").glob("step_*"))
    assert "requeueing job" in err and saved and saved[0] < total, (
        f"the signal (sent after step {at_signal[-1]}) did not checkpoint and requeue the job: "
        f"checkpoints {saved}, stderr ends with:\n" + "\n".join(err.splitlines()[-20:])
    )
    assert result["status"] == "completed" and result["step"] == total
    assert result["samples_seen"] == total * 8 * 2
    assert _steps(log) == list(range(1, total + 1))  # no step lost, none repeated
    assert "attempt 2" in err
    show = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True).stdout
    assert "Restarts=1" in show


def test_three_task_lasco_array_equals_single_build(slurm, world, tmp_path):
    from coir.datasets.lasco.build import build_lasco, finalize_build
    from coir.datasets.lasco.cli import load_build_config
    from coir.launch.api import load_submission

    flags = [
        "--vqa",
        world / "vqa",
        "--coco",
        world / "coco",
        "--split",
        "val",
        "--shard-size",
        "5",
        "--size",
        "48",
        "--no-progress",
        "--set",
        "gallery_shard_size=6",
    ]
    run = tmp_path / "run"
    code, out = coir_launch(
        "data",
        "lasco",
        "--array",
        "3",
        *flags,
        "--out",
        tmp_path / "array",
        "--cluster-config",
        TESTBED_CLUSTER,
        "--run-dir",
        run,
    )
    assert code == 0, out
    submission = load_submission(run)
    assert [r.kind for r in submission.records] == ["lasco-build"] * 3 + ["lasco-finalize"]
    assert len({r.job_id.split("_")[0] for r in submission.records[:3]}) == 1  # one array job
    results = submission.wait(timeout_s=WAIT_S)
    assert all(r["shards_written"] > 0 for r in results[:3])  # every task wrote its own range

    args = launch_parser().parse_args(["data", "lasco", *map(str, flags), "--out", str(tmp_path / "single")])
    config = load_build_config(args)
    build_lasco(config, 0, 1, progress=False)
    finalize_build(config.out)
    array, single = folder_digest(tmp_path / "array"), folder_digest(tmp_path / "single")
    assert array == single
    assert any(name.startswith("triplets/triplets-") for name in array)


def test_eval_sweep_array_collects_one_table(pretrained, world, tmp_path):
    from coir.launch.api import load_submission

    export = Path(pretrained[2].task_results(0)[0]["export_dir"])
    for name in ("a", "b"):
        shutil.copytree(export, tmp_path / "ckpts" / name / "export")
    run = tmp_path / "sweep"
    code, out = coir_launch(
        "eval",
        "--checkpoints",
        tmp_path / "ckpts" / "*" / "export",
        "--benchmarks",
        "cirr",
        "--data-root",
        world,
        "--batch-size",
        "32",
        "--no-pictures",
        "--cluster-config",
        TESTBED_CLUSTER,
        "--run-dir",
        run,
    )
    assert code == 0, out
    submission = load_submission(run)
    assert [r.kind for r in submission.records] == ["eval", "eval", "eval-collect"]
    *_, table = submission.wait(timeout_s=WAIT_S)
    assert set(table["cirr/val"]) == {"a-export", "b-export"}
    assert table["cirr/val"]["a-export"] == table["cirr/val"]["b-export"]  # same weights, same numbers
    assert json.loads((run / "results.json").read_text()) == table
    markdown = (run / "results.md").read_text()
    assert "| a-export |" in markdown and "| b-export |" in markdown and "R@1" in markdown


def test_two_task_eval_splits_the_gallery_and_writes_once(pretrained, world, tmp_path):
    """`coir launch eval` with 2 tasks: one process group; each rank embeds half the gallery; the same
    metrics as one process; one set of outputs (rank 0's) and one entry in the model card; every line of
    each rank's log carries its rank, host and SLURM ids."""
    from coir.eval.api import evaluate
    from coir.eval.config import EvalConfig
    from coir.launch.api import load_submission
    from coir.pipeline.card import read_card

    trained = Path(pretrained[2].task_results(0)[0]["export_dir"])
    export, reference_copy = tmp_path / "ckpt" / "export", tmp_path / "reference" / "export"
    shutil.copytree(trained, export)
    shutil.copytree(trained, reference_copy)
    evaluations_before = len(read_card(export).get("evaluations", []))
    run = tmp_path / "ranked"
    options = ("--batch-size", "8", "--no-pictures", "--no-cache")
    code, out = coir_launch(
        "eval", "--checkpoints", export, "--benchmarks", "cirr", "--data-root", world, *options,
        "--tasks-per-node", "2", "--cluster-config", TESTBED_CLUSTER, "--run-dir", run,
    )  # fmt: skip
    assert code == 0, out
    submission = load_submission(run)
    *_, table = submission.wait(timeout_s=WAIT_S)

    config = EvalConfig(
        benchmark="cirr", data_root=str(world / "cirr"), batch_size=8, pictures=False, cache=False,
        device="cpu", num_workers=0, out=str(tmp_path / "reference" / "out"), model_name="ckpt-export",
    )  # fmt: skip
    single = evaluate(str(reference_copy), config)
    [task] = single.results["cirr/val"][:1]
    gallery, queries = len(task.task.gallery_paths), len(task.task.queries)
    ranks = submission.task_results(0)
    assert [(r["rank"], r["world_size"]) for r in ranks] == [(0, 2), (1, 2)], ranks
    metrics = single.fragment["cirr/val"]["ckpt-export"]
    assert ranks[0]["fragment"]["cirr/val"]["ckpt-export"] == metrics
    assert set(table["cirr/val"]) == {"ckpt-export"}
    assert [r["gallery"] for r in ranks] == [(gallery + 1) // 2, gallery // 2]
    assert sum(r["queries"] for r in ranks) == queries and min(r["queries"] for r in ranks) > 0
    cell = run / "eval" / "ckpt-export" / "cirr"
    assert sorted(p.name for p in cell.rglob("*")) == sorted(
        p.name for p in (tmp_path / "reference" / "out").rglob("*")
    )
    assert len(read_card(export)["evaluations"]) == evaluations_before + 1  # rank 0 only

    job_id = submission.records[0].job_id
    for task_index, stream in ((0, "--err"), (1, "--err"), (1, "--out")):
        flags = ("--err",) if stream == "--err" else ()
        code, out = coir_launch("logs", run, "--job", job_id, "--task", task_index, *flags, "-n", "0")
        header, *body = [line for line in out.splitlines() if line.strip()]
        assert code == 0 and f"task {task_index}: " in header and body, out
        prefix = f"[rank {task_index}/2 host {socket.gethostname()} job {job_id} step "
        # submitit's own two lines before the task starts (loading the job) are the only bare ones
        bare = [line for line in body if not line.startswith(prefix)]
        startup = re.compile(r"submitit INFO .* - (Starting with|Loading pickle)")
        assert all(startup.search(line) for line in bare), out
        assert len(body) > len(bare), out


def test_cancel_stops_a_running_job_for_good(slurm, tmp_path):
    """scancel sends SIGTERM, which the trainer treats like a preemption: the job must not come back."""
    run = tmp_path / "run"
    code, out = coir_launch(
        "selftest",
        "--steps",
        "1000",
        "--step-seconds",
        "0.5",
        "--tasks-per-node",
        "2",
        "--cluster-config",
        TESTBED_CLUSTER,
        "--run-dir",
        run,
    )
    assert code == 0, out
    job_id = submitted(out)
    steps = run / "selftest" / "steps_rank0.log"
    deadline = time.monotonic() + WAIT_S
    while not (steps.is_file() and len(steps.read_text().split()) >= 2):
        assert time.monotonic() < deadline, "selftest did not start"
        time.sleep(0.5)
    code, out = coir_launch("cancel", run)
    assert code == 0 and job_id in out
    # SLURM ends the job (SIGTERM, SIGKILL after KillWait=30 s); CANCELLED without COMPLETING is final:
    # a requeue (wrong here) would have happened before and shown as Restarts=1 or another state
    deadline = time.monotonic() + WAIT_S
    while (state := _squeue_state(job_id)) != "CANCELLED":
        assert time.monotonic() < deadline, f"job {job_id} still {state} {WAIT_S} s after scancel"
        time.sleep(1)
    fields = _job_fields(job_id)
    assert fields.get("JobState") == "CANCELLED" and fields.get("Restarts") == "0", fields
    code, out = coir_launch("status", run)
    assert code == 0 and "CANCELLED" in out, out


def _squeue_state(job_id: str) -> str:
    """squeue's %T: COMPLETING while processes of the job remain, CANCELLED once they are gone."""
    out = subprocess.run(
        ["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"], capture_output=True, text=True
    )
    return out.stdout.strip()


def _job_fields(job_id: str) -> dict[str, str]:
    out = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True).stdout
    return dict(item.split("=", 1) for item in out.split() if "=" in item)
