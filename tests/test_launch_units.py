"""coir.launch without a cluster: sbatch scripts, cluster configs, requeue bookkeeping, run records,
and one local (submitit LocalExecutor) job of two ranks."""

from __future__ import annotations

import json
import pickle
import socket
from pathlib import Path

import pytest
from launch_helpers import REPO, coir_launch, launch_parser

from coir.common.errors import ConfigError, DataFormatError, MissingInputError
from coir.launch.cluster_config import ClusterConfig, load_cluster_config, parse_time
from coir.launch.executor import render_sbatch

EXAMPLE_CLUSTER = REPO / "configs" / "cluster" / "example.yaml"


def sbatch_flags(script: str) -> dict[str, str]:
    flags = {}
    for line in script.splitlines():
        if line.startswith("#SBATCH --"):
            key, _, value = line[len("#SBATCH --") :].partition("=")
            flags[key] = value
    return flags


def test_sbatch_script_for_4_nodes_x_8_gpus(tmp_path):
    code, script = coir_launch(
        "train",
        "configs/pretrain/case_base.yaml",
        "--dry-run",
        "--cluster-config",
        EXAMPLE_CLUSTER,
        "--nodes",
        "4",
        "--gpus-per-node",
        "8",
        "--time",
        "2-00:00:00",
        "--partition",
        "h100",
        "--account",
        "vision",
        "--qos",
        "high",
        "--constraint",
        "h100|a100",
        "--exclude",
        "node[01-02]",
        "--signal-delay",
        "240",
        "--run-dir",
        tmp_path / "run",
    )
    assert code == 0, script
    flags = sbatch_flags(script)
    assert flags["nodes"] == "4"
    assert flags["ntasks-per-node"] == "8"  # one task (rank) per GPU
    assert flags["gpus-per-node"] == "8"
    assert flags["signal"] == "USR2@240"
    assert flags["time"] == str(2 * 24 * 60)  # minutes
    assert flags["partition"] == "h100" and flags["account"] == "vision" and flags["qos"] == "high"
    assert flags["constraint"] == "'h100|a100'" and flags["exclude"] == "'node[01-02]'"
    assert flags["cpus-per-task"] == "10" and flags["mem"] == "480GB"  # from the cluster file
    assert "requeue" in flags
    assert str(tmp_path / "run" / "submitit") in flags["output"]
    assert "export OMP_NUM_THREADS=8" in script  # setup lines of the cluster file
    assert script.rstrip().splitlines()[-1].startswith("srun ")
    assert "--kill-on-bad-exit=1" in script.rstrip().splitlines()[-1]  # a failed rank ends the job


def test_array_script_and_one_task_per_array_element(tmp_path):
    cluster = load_cluster_config(None, [], partition="cpu", cpus_per_task=4, time="30")
    flags = sbatch_flags(render_sbatch(cluster, tmp_path, "coir-lasco", array=16))
    assert flags["array"] == "0-15%16" and flags["ntasks-per-node"] == "1" and "gpus-per-node" not in flags
    assert flags["time"] == "30" and flags["cpus-per-task"] == "4"
    code, script = coir_launch(
        "eval",
        "--checkpoints",
        "a",
        "--checkpoints",
        "b",
        "--benchmarks",
        "cirr,fashioniq",
        "--data-root",
        "W",
        "--dry-run",
        "--cluster-config",
        EXAMPLE_CLUSTER,
        "--gpus-per-node",
        "1",
    )
    assert code == 0 and sbatch_flags(script)["array"] == "0-3%4"  # 2 checkpoints x 2 benchmarks


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("01:00:00", 60), ("90", 90), ("2-00", 2880), ("1-12:30:00", 2190), ("00:00:30", 1), ("5:30", 6)],
)
def test_slurm_time_formats(text, minutes):
    assert parse_time(text) == minutes


@pytest.mark.parametrize("text", ["", "1h", "-5", "0", "12:xx"])
def test_bad_time_names_the_key(text):
    with pytest.raises(ConfigError, match="time"):
        parse_time(text)


def test_cluster_file_unknown_key_and_bad_values(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("partion: gpu\n")
    with pytest.raises(ConfigError, match="partion"):
        load_cluster_config(path)
    path.write_text("nodes: many\n")
    with pytest.raises(ConfigError, match="nodes"):
        load_cluster_config(path)
    with pytest.raises(ConfigError, match="nodes"):
        load_cluster_config(None, [], cluster="local", nodes=2)
    with pytest.raises(ConfigError, match="cluster"):
        load_cluster_config(None, [], cluster="pbs")
    with pytest.raises(MissingInputError):
        load_cluster_config(tmp_path / "absent.yaml")


def test_flags_override_the_cluster_file():
    config = load_cluster_config(
        EXAMPLE_CLUSTER, ["sbatch.mail-user=me@lab.org"], partition="debug", gpus_per_node=4, account=None
    )
    assert config.partition == "debug" and config.gpus_per_node == 4 and config.ntasks_per_node == 4
    assert config.cpus_per_task == 10  # kept from the file
    assert config.sbatch == {"mail-user": "me@lab.org"}
    assert ClusterConfig(gpus_per_node=0).ntasks_per_node == 1
    assert ClusterConfig(gpus_per_node=8, tasks_per_node=2, nodes=3).num_tasks == 6
    for name in ("example", "local", "testbed"):
        load_cluster_config(REPO / "configs" / "cluster" / f"{name}.yaml")


def test_gpu_visibility_checks():
    from coir.launch.distributed import gpu_problem

    assert gpu_problem(None, 3, 8, 8) is None  # nothing exported: every GPU visible
    assert gpu_problem("0,1,2,3,4,5,6,7", 7, 8, 8) is None
    assert gpu_problem("", 0, 2, 0) is None  # CPU-only job
    assert "local rank 3" in gpu_problem("5", 3, 8, 8)  # bound to one device, but cuda:3 is asked for


def test_distributed_env_from_a_slurm_task(monkeypatch, tmp_path):
    """Ranks from SLURM; the master port is one rank 0 found free and published in the job's folder,
    read by every other rank; a requeued attempt agrees on a port of its own."""
    import threading

    from coir.launch.distributed import export_torch_env

    env = {
        "SUBMITIT_EXECUTOR": "slurm",
        "SUBMITIT_FOLDER": str(tmp_path / "submitit"),
        "SLURM_JOB_ID": "4242",
        "SLURM_NTASKS": "32",
        "SLURM_JOB_NUM_NODES": "4",
        "SLURM_NODEID": "2",
        "SLURM_PROCID": "19",
        "SLURM_LOCALID": "3",
        "SLURM_JOB_NODELIST": "gpu[07-10]",
        "CUDA_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7",
        "MASTER_PORT": "29500",  # inherited from the submitting shell: not the job's port
    }
    unset = ("MASTER_ADDR", "RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_ARRAY_JOB_ID", "SLURM_RESTART_COUNT")
    for key in unset:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    found: dict[str, dict[str, str]] = {}
    waiting = threading.Thread(target=lambda: found.update(rank19=export_torch_env(gpus_per_node=8)))
    waiting.start()  # rank 19 starts first and waits for rank 0's port
    waiting.join(timeout=0.5)
    assert waiting.is_alive()
    monkeypatch.setenv("SLURM_PROCID", "0")
    monkeypatch.setenv("SLURM_NODEID", "0")
    monkeypatch.setenv("SLURM_LOCALID", "0")
    rank0 = export_torch_env(gpus_per_node=8)
    waiting.join(timeout=10)
    values = found["rank19"]
    assert values["MASTER_ADDR"] == "gpu07" and values["RANK"] == "19" and values["WORLD_SIZE"] == "32"
    assert values["LOCAL_RANK"] == "3" and values["LOCAL_WORLD_SIZE"] == "8"
    assert values["MASTER_PORT"] == rank0["MASTER_PORT"] != "29500"
    with socket.socket() as sock:  # rank 0's port was free on its host
        sock.bind(("", int(rank0["MASTER_PORT"])))
    export_torch_env(gpus_per_node=8, requeues=1)  # a new attempt publishes a file of its own
    files = sorted(p.name for p in (tmp_path / "submitit" / "rendezvous").iterdir())
    assert files == ["4242.restart0.requeue0.port", "4242.restart0.requeue1.port"]
    import os

    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1,2,3,4,5,6,7"  # not pinned to the local rank


def test_a_rank_without_its_master_port_stops_naming_the_file(tmp_path):
    from coir.common.errors import CoirError
    from coir.launch.rendezvous import agree_on_port

    path = tmp_path / "rendezvous" / "7.restart0.requeue0.port"
    with pytest.raises(CoirError, match=r"rank 1: rank 0 did not publish .*7\.restart0\.requeue0\.port"):
        agree_on_port(path, rank=1, wait_s=0.3)
    path.parent.mkdir()
    path.write_text("http\n")
    with pytest.raises(CoirError, match="not a port number"):
        agree_on_port(path, rank=1, wait_s=0.3)


def test_requeue_bookkeeping():
    from coir.launch.task import LaunchedTask

    task = LaunchedTask(
        "coir.launch.jobs:train",
        {"config": "c.yaml", "overrides": []},
        max_requeues=2,
        resume_kwargs={"resume": "auto"},
    )
    first = task.resumed()
    assert first.requeues == 1 and first.kwargs["resume"] == "auto" and "resume" not in task.kwargs
    second = first.resumed()
    assert second.requeues == 2 and second.resumed() is None
    delayed = first.checkpoint()
    assert delayed.function.requeues == 2
    assert second.checkpoint() is None  # submitit then ends the job instead of requeueing
    assert pickle.loads(pickle.dumps(first)).kwargs == first.kwargs


def test_preempted_without_requeues_left_ends_the_job_with_advice():
    from submitit.core.utils import UncompletedJobError

    from coir.launch.task import LaunchedTask

    task = LaunchedTask(
        "builtins:dict", {"status": "preempted", "step": 7, "checkpoint": "ck/step_7"}, max_requeues=0
    )
    with pytest.raises(UncompletedJobError, match="step 7.*ck/step_7.*--resume auto"):
        task()


def test_task_runs_its_target():
    from coir.launch.task import LaunchedTask

    assert LaunchedTask("posixpath:relpath", {"path": "/a/b/c", "start": "/a"})() == "b/c"


def test_model_names_and_data_roots(tmp_path):
    from coir.launch.api import data_roots, model_names

    assert model_names(["runs/a/export", "runs/b/export"]) == ["a-export", "b-export"]
    assert model_names(["runs/a/export"]) == ["a-export"]
    (tmp_path / "cirr").mkdir()
    roots = data_roots([str(tmp_path), f"fashioniq={tmp_path / 'fiq'}"], ["cirr", "fashioniq", "lasco"])
    assert roots == {
        "cirr": str(tmp_path / "cirr"),
        "fashioniq": str(tmp_path / "fiq"),
        "lasco": str(tmp_path),
    }
    with pytest.raises(ConfigError, match="cirr"):
        data_roots(["lasco=/x"], ["cirr"])
    from coir.launch.api import image_roots

    assert image_roots(["/img", "cirr=/raw"], ["cirr", "fashioniq"]) == {"cirr": "/raw", "fashioniq": "/img"}


def test_run_records_status_and_logs(tmp_path, capsys):
    from coir.launch import runs

    with pytest.raises(MissingInputError):
        runs.read_jobs(tmp_path)
    folder = tmp_path / "submitit"
    folder.mkdir()
    done = runs.JobRecord("train", "101", "slurm", str(folder), num_tasks=2)
    bad = runs.JobRecord("lasco-build", "102_0", "slurm", str(folder))
    gone = runs.JobRecord("selftest", "999999999", "local", str(folder))
    runs.add_jobs(tmp_path, [done])
    runs.add_jobs(tmp_path, [bad, gone])
    assert [r.job_id for r in runs.read_jobs(tmp_path)] == ["101", "102_0", "999999999"]
    from coir.launch.results import write_result

    write_result(folder / "101_0_result.json", "success", {"status": "completed", "step": 4, "world_size": 2})
    write_result(folder / "102_0_0_result.json", "error", "Traceback ...\nValueError: broken shard")
    (folder / "101_1_log.out").write_text("line 1\nline 2\n")
    states = {row["record"].job_id: row for row in runs.run_status(tmp_path)}
    assert states["101"]["state"] == "COMPLETED" and states["101"]["result"]["step"] == 4
    assert states["102_0"]["state"] == "FAILED" and "broken shard" in states["102_0"]["reason"]
    assert states["999999999"]["state"].startswith("ENDED")
    code, out = coir_launch("status", tmp_path)
    assert code == 0 and "step=4" in out and "broken shard" in out
    code, out = coir_launch("logs", tmp_path, "--job", "train", "--task", "1", "-n", "1")
    assert code == 0 and "line 2" in out and "line 1" not in out
    code, out = coir_launch("logs", tmp_path, "--job", "eval")
    assert code == 2 and "101 (train)" in out  # names the jobs it knows
    (tmp_path / "jobs.json").write_text("{not json")
    with pytest.raises(DataFormatError):
        runs.read_jobs(tmp_path)


def test_launch_without_a_command_is_a_user_error():
    code, out = coir_launch()
    assert code == 2 and "train, eval, data" in out
    args = launch_parser().parse_args(["data", "synth", "--out", "w", "--cluster", "local", "--wait"])
    assert args.launch_data == "synth" and args.out == Path("w") and args.launch_wait


def test_local_two_rank_job(tmp_path, monkeypatch):
    """The local executor runs both ranks here; they meet through the exported MASTER_ADDR/PORT."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    code, out = coir_launch(
        "selftest",
        "--steps",
        "3",
        "--step-seconds",
        "0.05",
        "--cluster",
        "local",
        "--tasks-per-node",
        "2",
        "--run-dir",
        tmp_path,
        "--wait",
    )
    assert code == 0, out
    result = json.loads(out.strip().splitlines()[-1].split(": ", 1)[1])
    assert result["status"] == "completed" and result["world_size"] == 2 and result["samples_seen"] == 6
    assert (tmp_path / "selftest" / "steps_rank1.log").read_text().split() == ["1", "2", "3"]


def test_local_job_checkpoints_and_restarts_on_usr2(tmp_path, monkeypatch):
    """The requeue protocol under the local executor: the controller restarts the tasks, which resume."""
    import os
    import signal
    import time

    from coir.launch.api import load_submission

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    code, out = coir_launch(
        "selftest",
        "--steps",
        "12",
        "--step-seconds",
        "0.3",
        "--cluster",
        "local",
        "--tasks-per-node",
        "2",
        "--run-dir",
        tmp_path,
    )
    assert code == 0, out
    submission = load_submission(tmp_path)
    controller = submission.records[0].job_id
    steps = tmp_path / "selftest" / "steps_rank0.log"
    deadline = time.monotonic() + 120
    while not (steps.is_file() and len(steps.read_text().split()) >= 2):
        assert time.monotonic() < deadline, "selftest did not start"
        time.sleep(0.2)
    children = _children(int(controller))
    assert len(children) == 2
    for pid in children:
        os.kill(pid, signal.SIGUSR2)
    from coir.launch.results import read_result, result_path

    result_file = result_path(submission.records[0].paths(0))
    while read_result(result_file) is None:
        assert time.monotonic() < deadline, "the restarted job did not finish"
        time.sleep(0.5)
    status, result = read_result(result_file)
    assert status == "success" and result["status"] == "completed" and result["step"] == 12
    for rank in (0, 1):
        assert (tmp_path / "selftest" / f"steps_rank{rank}.log").read_text().split() == [
            str(s) for s in range(1, 13)
        ]  # stopped, checkpointed, restarted: every step once
    assert "attempt 2" in submission.records[0].paths(0).stderr.read_text()


def _children(parent: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:  # field 4 of /proc/PID/stat: the parent pid
            found.append(int(stat.parent.name))
    return found


def _tiny_recipe(tmp_path: Path) -> Path:
    """A train config whose inputs exist (enough for load_train_config's checks; nothing is trained)."""
    from test_train_support import write_recipe

    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "a.tar").write_bytes(b"")
    (tmp_path / "tokenizer").mkdir()
    return write_recipe(tmp_path, tmp_path / "shards", tmp_path / "tokenizer")


def test_submitted_train_task_resumes_auto_from_the_first_attempt(tmp_path, monkeypatch):
    """SLURM's own requeues (PreemptMode=REQUEUE, a node failure) re-run the first pickle: it must resume."""
    from types import SimpleNamespace

    from coir.launch import api

    submitted = []

    class FakeExecutor:
        def submit(self, task):
            submitted.append(task)
            return SimpleNamespace(job_id="77", paths=SimpleNamespace(folder=tmp_path / "submitit"))

    monkeypatch.setattr(api, "make_executor", lambda *args: FakeExecutor())
    cluster = ClusterConfig(cluster="slurm", partition="debug")
    api.submit_train(_tiny_recipe(tmp_path), ["optim.total_steps=4"], cluster, tmp_path / "run")
    api.submit_selftest(3, 0.1, cluster, tmp_path / "selftest")
    train, selftest = submitted
    assert train.target == "coir.launch.jobs:train" and train.requeues == 0
    assert train.kwargs["resume"] == "auto" and selftest.kwargs["resume"] == "auto"
    assert pickle.loads(pickle.dumps(train)).kwargs["resume"] == "auto"  # what sbatch runs
    assert train.resumed().kwargs["resume"] == "auto"


def test_resume_auto_prefers_the_runs_checkpoint_over_a_given_one(tmp_path):
    from coir.launch.jobs import resume_overrides

    recipe = _tiny_recipe(tmp_path)
    run = [f"run_dir={tmp_path / 'run'}"]
    assert resume_overrides(str(recipe), run, "auto") == [*run, "checkpoint.resume=auto"]  # fresh: no-op
    given = tmp_path / "pretrained_ckpt"
    given.mkdir()
    by_hand = [*run, f"checkpoint.resume={given}"]
    assert resume_overrides(str(recipe), by_hand, "auto") == by_hand  # first attempt: the given one
    step = tmp_path / "run" / "checkpoints" / "step_3"
    step.mkdir(parents=True)
    (step / "trainer.json").write_text("{}")
    assert resume_overrides(str(recipe), by_hand, "auto")[-1] == "checkpoint.resume=auto"  # requeued
    assert resume_overrides(str(recipe), run, None) == run


class _FakeScheduler:
    """A state source for Submission.wait and a clock that advances by each poll's sleep."""

    def __init__(self, states: list[str]) -> None:
        self.states = iter(states)
        self.now = 0.0

    def state(self, record, job):
        state = next(self.states)
        return {"state": state, "reason": "", "result": {"step": 4} if state == "COMPLETED" else None}

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _wait_with(monkeypatch, tmp_path, states: list[str]):
    from coir.launch import api, runs

    fake = _FakeScheduler(states)
    monkeypatch.setattr(api.Submission, "_state", lambda self, record, job: fake.state(record, job))
    monkeypatch.setattr(api, "_clock", lambda: fake.now)
    monkeypatch.setattr(api, "_sleep", fake.sleep)
    record = runs.JobRecord("train", "5", "slurm", str(tmp_path))
    return fake, api.Submission(tmp_path, [record], [None])


def test_wait_rides_out_a_scheduler_that_does_not_answer(tmp_path, monkeypatch):
    """squeue and scontrol failing (UNKNOWN) for less than a minute at a time is no failure."""
    states = ["RUNNING", *["UNKNOWN"] * 6, "RUNNING", *["UNKNOWN"] * 6, "PENDING", "COMPLETED"]
    fake, submission = _wait_with(monkeypatch, tmp_path, states)
    assert submission.wait(poll_s=10) == [{"step": 4}]  # 2 x 50 s of UNKNOWN, with a RUNNING between
    assert fake.now == 10 * (len(states) - 1)


def test_wait_gives_up_on_a_job_unknown_for_a_minute(tmp_path, monkeypatch):
    from coir.launch.api import JobFailed

    fake, submission = _wait_with(monkeypatch, tmp_path, ["RUNNING", *["UNKNOWN"] * 20])
    with pytest.raises(JobFailed, match="train 5: UNKNOWN.*60 s"):
        submission.wait(poll_s=10)
    assert fake.now == 10 + 60  # first seen UNKNOWN at 10 s, given up at 70 s
    fake, submission = _wait_with(monkeypatch, tmp_path, ["RUNNING", "FAILED"])
    with pytest.raises(JobFailed, match="train 5: FAILED"):
        submission.wait(poll_s=10)


def test_launch_eval_gives_every_task_the_options_of_coir_eval(tmp_path, monkeypatch):
    """`coir launch eval` takes `coir eval`'s flags and KEY=VALUE overrides (one EvalConfig schema); each
    array task, run as the job runs it (unpickled), evaluates an EvalConfig holding all of them."""
    import contextlib
    from types import SimpleNamespace

    from submitit.core.utils import JobPaths

    from coir.eval.benchmarks import get_benchmark
    from coir.eval.config import EvalConfig
    from coir.launch import api

    submitted = []

    class FakeExecutor:
        def batch(self):
            return contextlib.nullcontext()

        def update_parameters(self, **kwargs):
            pass

        def submit(self, task):
            submitted.append(task)
            n = len(submitted)
            return SimpleNamespace(job_id=str(n), paths=JobPaths(tmp_path / "submitit", job_id=str(n)))

    monkeypatch.setattr(api, "make_executor", lambda *args: FakeExecutor())
    for name in ("a", "b"):
        (tmp_path / "runs" / name / "export").mkdir(parents=True)
    for benchmark in ("cirr", "fashioniq"):
        (tmp_path / "data" / benchmark).mkdir(parents=True)
    code, out = coir_launch(
        "eval", "--checkpoints", tmp_path / "runs" / "*" / "export", "--benchmarks", "cirr,fashioniq",
        "--data-root", tmp_path / "data", "--image-root", f"cirr={tmp_path / 'raw'}",
        "--caption-orders", "both", "--batch-size", "7", "--no-pictures", "--split", "val",
        "mask_reference=true", "memory_gb=0.5", "cache=false",
        "--cluster", "local", "--run-dir", tmp_path / "sweep",
    )  # fmt: skip
    assert code == 0, out
    cells = [t for t in submitted if t.target == "coir.launch.jobs:evaluate"]
    assert len(cells) == 4 and submitted[-1].target == "coir.launch.jobs:collect_eval"

    seen = []

    def recording_evaluate(model_or_checkpoint, config, **kwargs):
        seen.append((model_or_checkpoint, config))
        return SimpleNamespace(fragment={f"{config.benchmark}/{config.split}": {config.model_name: {}}})

    monkeypatch.setattr("coir.eval.api.evaluate", recording_evaluate)
    for task in cells:
        pickle.loads(pickle.dumps(task))()  # what the array task runs: coir.launch.jobs.evaluate
    assert {(c.model_name, c.benchmark) for _, c in seen} == {
        (m, b) for m in ("a-export", "b-export") for b in ("cirr", "fashioniq")
    }
    for checkpoint, config in seen:
        assert isinstance(config, EvalConfig)
        assert config.memory_gb == 0.5 and config.mask_reference is True and config.cache is False
        assert config.batch_size == 7 and config.pictures is False and config.split == "val"
        assert config.device == "cpu"  # no GPUs requested
        name = config.model_name.split("-")[0]
        assert checkpoint == config.checkpoint == str((tmp_path / "runs" / name / "export").resolve())
        assert config.data_root == str((tmp_path / "data" / config.benchmark).resolve())
        assert config.out == str(
            (tmp_path / "sweep").resolve() / "eval" / config.model_name / config.benchmark
        )
        assert get_benchmark("fashioniq").options(config).caption_orders == "both"
        raw = str((tmp_path / "raw").resolve())
        assert config.image_root == (raw if config.benchmark == "cirr" else None)


def test_launch_eval_refuses_bad_options_before_submitting(tmp_path, monkeypatch):
    from coir.launch import api

    monkeypatch.setattr(api, "make_executor", lambda *args: pytest.fail("submitted"))
    (tmp_path / "export").mkdir()
    common = ("eval", "--checkpoints", tmp_path / "export", "--data-root", tmp_path, "--cluster", "local")
    code, out = coir_launch(*common, "--benchmarks", "cirr", "memory_gb=-1")
    assert code == 2 and "memory_gb" in out
    code, out = coir_launch(*common, "--benchmarks", "cirr", "--caption-orders", "both")
    assert code == 2 and "--caption-orders: an option of fashioniq" in out
    code, out = coir_launch(*common, "--benchmarks", "fashioniq", "options.fashioniq.caption_orders=twice")
    assert code == 2 and "options.fashioniq.caption_orders" in out
    code, out = coir_launch(*common, "--benchmarks", "cirr", "model_name=x")
    assert code == 2 and "model_name" in out
    code, out = coir_launch(*common, "--benchmarks", "cirr,shoez")
    assert code == 2 and "'shoez'" in out
