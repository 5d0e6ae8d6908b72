"""No code runs from files a run reads back: per-rank state files and DeepSpeed's checkpoint files load
tensors and plain data only, and `coir launch status` / `wait` / the collecting jobs read the JSON results
the jobs write, never submitit's result pickles. Each crafted file would create a marker file if unpickled."""

from __future__ import annotations

import json
import os
import pickle
import shlex
from pathlib import Path

import pytest
from launch_helpers import coir_launch
from test_train_distributed import _run_spawned
from test_train_support import child_env, free_port

DEAD_PID = "999999999"  # above any pid_max: a local job whose controller is gone


class _Planted:
    """Unpickling this runs `touch <marker>`, as a hostile file would run anything."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def _plant_pickle(path: Path, payload: object) -> None:
    with path.open("wb") as handle:
        pickle.dump(payload, handle)


# -- launch: status, wait and the collecting jobs ---------------------------------------------------
def test_launch_status_and_wait_read_json_results_and_never_a_result_pickle(tmp_path: Path) -> None:
    from coir.launch import runs
    from coir.launch.api import JobFailed, load_submission
    from coir.launch.results import read_result, result_path, write_result

    folder = tmp_path / "submitit"
    folder.mkdir()
    done = runs.JobRecord("train", "4242", "local", str(folder))
    gone = runs.JobRecord("selftest", DEAD_PID, "local", str(folder))
    runs.add_jobs(tmp_path, [done, gone])
    markers = [tmp_path / "ran_done", tmp_path / "ran_gone"]
    for record, marker in zip((done, gone), markers, strict=True):
        _plant_pickle(record.paths().result_pickle, ("success", _Planted(marker)))
    write_result(result_path(done.paths()), "success", {"status": "completed", "step": 4, "world_size": 2})

    states = {row["record"].job_id: row for row in runs.run_status(tmp_path)}
    assert states["4242"]["state"] == "COMPLETED" and states["4242"]["result"]["step"] == 4
    assert states[DEAD_PID]["state"].startswith("ENDED")  # a pickle is no result
    code, out = coir_launch("status", tmp_path)
    assert code == 0 and "step=4" in out
    code, out = coir_launch("logs", tmp_path)
    assert code == 0
    with pytest.raises(JobFailed, match=f"selftest {DEAD_PID}: ENDED"):
        load_submission(tmp_path).wait(timeout_s=5, poll_s=0.1)
    assert load_submission(tmp_path).task_results(0) == [{"status": "completed", "step": 4, "world_size": 2}]
    assert read_result(result_path(gone.paths())) is None
    assert not any(m.exists() for m in markers)


def test_collecting_jobs_wait_for_json_results(tmp_path: Path) -> None:
    from coir.common.errors import CoirError
    from coir.launch.jobs import wait_for_results
    from coir.launch.results import write_result

    first, second = tmp_path / "1_0_result.json", tmp_path / "2_0_result.json"
    write_result(first, "success", {"cirr/val": {"a": {"R@1": 50.0}}})
    write_result(second, "error", "Traceback ...\nValueError: broken shard")
    assert wait_for_results([str(first)], timeout_s=1) == [{"cirr/val": {"a": {"R@1": 50.0}}}]
    with pytest.raises(CoirError, match="1 job.s. failed.*2_0_result.json"):
        wait_for_results([str(first), str(second)], timeout_s=1)
    crafted = tmp_path / "3_0_result.json"
    crafted.write_text("not json {")
    with pytest.raises(CoirError, match="3_0_result.json"):
        wait_for_results([str(crafted)], timeout_s=1)


# -- checkpoints: per-rank state and DeepSpeed's files ----------------------------------------------
CRAFTED = ("rank_00000.pt", "mp_rank_00_model_states.pt", "zero_pp_rank_0_mp_rank_00_optim_states.pt")


def _checkpoint_cases(port: int, work: str) -> None:
    """Spawned, one rank: a real DeepSpeed engine (ZeRO-2, torch AdamW, coir's engine settings) saves a
    checkpoint with checkpoint.save; checkpoint.load reads it back, then with each crafted file in turn."""
    import random

    import deepspeed
    import numpy as np
    import torch

    from coir.pipeline import checkpoint, distributed

    os.environ.update(child_env())
    os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1")
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo")
    work_dir = Path(work)
    report: dict = {}
    try:
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 3)
        optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        config = {
            "train_micro_batch_size_per_gpu": 2,
            "gradient_accumulation_steps": 1,
            "train_batch_size": 2,
            "gradient_clipping": 1.0,
            "zero_optimization": {"stage": 2},
            "bf16": {"enabled": False},
            "zero_allow_untested_optimizer": True,
            "steps_per_print": 10**9,
        }
        engine, _, _, _ = deepspeed.initialize(
            model=model, optimizer=optimizer, lr_scheduler=scheduler, config=config, dist_init_required=False
        )
        engine.backward(engine(torch.ones(2, 4)).sum())
        engine.step()
        random.seed(5)
        np.random.seed(5)
        rank_state = {"rng": checkpoint.rng_state(), "stream": {"epoch": 3, "workers": [[1, 2]]}}
        expected_draws = (random.random(), float(np.random.rand()), float(torch.rand(1)))
        path = checkpoint.save(engine, work_dir / "ckpt", 1, {"step": 1}, rank_state, 0, keep_last=2)
        saved = {k: v.clone() for k, v in engine.module.state_dict().items()}
        with torch.no_grad():
            for parameter in engine.module.parameters():
                parameter.add_(1.0)
        trainer_state, loaded = checkpoint.load(engine, path, 0)
        checkpoint.set_rng_state(loaded["rng"])
        report["clean"] = {
            "trainer": trainer_state,
            "stream": loaded["stream"],
            "weights_equal": all(torch.equal(engine.module.state_dict()[k], v) for k, v in saved.items()),
            "draws_equal": (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected_draws,
        }
        for name in CRAFTED:
            target = path / name
            original = target.read_bytes()
            planted = _Planted(work_dir / f"ran_{name}")
            torch.save({"module": planted, "rng": planted}, target)
            try:
                checkpoint.load(engine, path, 0)
                report[name] = {"error": None}
            except Exception as error:  # noqa: BLE001 - the test inspects which error it was
                report[name] = {"error": type(error).__name__, "message": str(error)}
            target.write_bytes(original)
    finally:
        distributed.shutdown()
        (work_dir / "report.json").write_text(json.dumps(report))


def test_resume_loads_only_tensors_and_plain_data(tmp_path: Path) -> None:
    _run_spawned(_checkpoint_cases, [(free_port(), str(tmp_path))])
    report = json.loads((tmp_path / "report.json").read_text())
    clean = report["clean"]
    assert clean["trainer"] == {"step": 1} and clean["stream"] == {"epoch": 3, "workers": [[1, 2]]}
    assert clean["weights_equal"] and clean["draws_equal"]  # exact resume still restores everything
    for name in CRAFTED:
        assert not (tmp_path / f"ran_{name}").exists(), f"unpickling {name} ran code"
        assert report[name]["error"] == "DataFormatError", report[name]
        assert name in report[name]["message"] and "posix.system" in report[name]["message"]
