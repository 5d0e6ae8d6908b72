"""coir.launch.testbed without a real SLURM: install_slurm.sh's exit status, skip-or-fail decisions,
daemon start failures (with their logs), fresh ports, and the clean-up of leftover processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from launch_helpers import REPO

SCRIPT = REPO / "launch" / "testbed" / "install_slurm.sh"


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


def _install(tmp_path: Path, uid: int, apt: str | None) -> subprocess.CompletedProcess:
    """install_slurm.sh with a PATH that lacks the SLURM clients, a fake `id` and a fake apt-get."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    _script(bin_dir / "id", f"echo {uid}")
    for tool in ("chmod", "rm"):
        (bin_dir / tool).unlink(missing_ok=True)
        (bin_dir / tool).symlink_to(subprocess.check_output(["which", tool], text=True).strip())
    (bin_dir / "apt-get").unlink(missing_ok=True)
    if apt is not None:
        _script(bin_dir / "apt-get", apt)
    env = {"PATH": str(bin_dir), "POLICY_RC_D": str(tmp_path / "policy-rc.d")}
    return subprocess.run(["/bin/bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60)


def test_install_script_skips_only_where_it_cannot_install(tmp_path):
    result = _install(tmp_path, 1000, apt="exit 0")
    assert result.returncode == 0 and "not root" in result.stdout
    result = _install(tmp_path, 0, apt=None)
    assert result.returncode == 0 and "no apt-get" in result.stdout
    result = _install(tmp_path, 0, apt='[ "$1" = update ] && exit 100; exit 0')
    assert result.returncode == 0 and "update refused" in result.stdout


def test_install_script_fails_when_the_install_fails(tmp_path):
    result = _install(tmp_path, 0, apt='[ "$1" = update ] && exit 0; echo "E: broken"; exit 100')
    assert result.returncode == 1 and "install" in result.stderr and "failed" in result.stderr
    assert not (tmp_path / "policy-rc.d").exists()  # the temporary service policy is removed
    result = _install(tmp_path, 0, apt="exit 0")  # "installed", yet the binaries are still missing
    assert result.returncode == 1 and "still missing" in result.stderr


def test_install_outcome_decides_between_skip_and_fail(tmp_path, monkeypatch):
    from coir.launch.testbed import SlurmStartFailed, SlurmUnavailable, slurm

    monkeypatch.setattr(slurm, "_missing", lambda: ["sbatch"])
    monkeypatch.setattr(slurm, "INSTALL_SCRIPT", _script(tmp_path / "ok.sh", "echo 'slurm-deps: not root'"))
    with pytest.raises(SlurmUnavailable, match="missing sbatch.*not root"):
        slurm.install()
    monkeypatch.setattr(slurm, "INSTALL_SCRIPT", _script(tmp_path / "bad.sh", "echo 'E: dpkg broke'; exit 1"))
    with pytest.raises(SlurmStartFailed, match=r"failed \(exit 1\)[\s\S]*dpkg broke"):
        slurm.install()


def _fake_slurm(bin_dir: Path, slurmctld: str) -> None:
    """munged and mungekey that do just enough, and the given slurmctld."""
    bin_dir.mkdir()
    for name in ("sbatch", "srun", "squeue", "scontrol", "scancel", "sinfo", "slurmd"):
        _script(bin_dir / name, "exit 1")
    _script(
        bin_dir / "mungekey",
        'for a in "$@"; do case $a in --keyfile=*) echo key > "${a#--keyfile=}";; esac; done',
    )
    _script(
        bin_dir / "munged",
        'for a in "$@"; do case $a in --socket=*) touch "${a#--socket=}";; esac; done; exec sleep 600',
    )
    _script(bin_dir / "slurmctld", slurmctld)


def test_daemons_that_do_not_start_fail_with_their_logs(tmp_path, monkeypatch):
    from coir.launch.testbed import SlurmStartFailed, SlurmTestbed, slurm

    bin_dir = tmp_path / "bin"
    starts = tmp_path / "starts"
    _fake_slurm(
        bin_dir, f'echo started >> {starts}; echo "error: bind(): Address already in use" >&2; exit 1'
    )
    monkeypatch.setattr(slurm, "_which", lambda name: str(bin_dir / name))
    root = tmp_path / "testbed"
    (root / "state").mkdir(parents=True)
    (root / "state" / "stale_job_state").write_text("from a crashed run")
    before = dict(os.environ)
    testbed = SlurmTestbed(root)
    with pytest.raises(SlurmStartFailed) as error:
        testbed.start(timeout=60, install_missing=False)
    message = str(error.value)
    assert "slurmctld exited with 1" in message and "Address already in use" in message
    assert "--- slurmctld.out" in message and "slurmd" in message  # every daemon's log tail
    assert len(starts.read_text().split()) == slurm.PORT_ATTEMPTS  # a taken port: new ports, again
    assert not (root / "state" / "stale_job_state").exists()
    assert testbed.leftovers() == [] and dict(os.environ) == before


def test_free_ports_are_distinct():
    from coir.launch.testbed.slurm import _free_ports

    ports = _free_ports(2)
    assert len(set(ports)) == 2 and all(1024 < p < 65536 for p in ports)


def test_orphans_of_a_dead_session_are_reaped(tmp_path):
    from coir.launch.testbed import reap_orphans
    from coir.launch.testbed.slurm import MARK, OWNER, _start_time

    def spawn(owner: str) -> subprocess.Popen:
        env = dict(os.environ, **{MARK: str(tmp_path), OWNER: owner})
        return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], env=env)

    orphan = spawn("999999999:0")
    owned = spawn(f"{os.getpid()}:{_start_time(os.getpid())}")
    try:
        deadline = time.monotonic() + 60
        while orphan.pid not in reap_orphans():
            assert time.monotonic() < deadline, "the orphan was not found"
            time.sleep(0.2)
        assert orphan.wait(timeout=60) != 0
        assert owned.poll() is None  # its owner (this process) lives
    finally:
        for process in (orphan, owned):
            process.kill()
            process.wait()


def test_watchdog_kills_the_testbed_when_its_owner_dies(tmp_path):
    from coir.launch.testbed.slurm import MARK, OWNER, _start_time

    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    deadline = time.monotonic() + 60
    while (started := _start_time(owner.pid)) is None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    env = dict(os.environ, **{MARK: str(tmp_path), OWNER: f"{owner.pid}:{started}"})
    daemon = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], env=env)
    watchdog = subprocess.Popen(
        [sys.executable, "-c", "from coir.launch.testbed.slurm import watch; watch()"], env=env
    )
    try:
        time.sleep(1)
        assert daemon.poll() is None and watchdog.poll() is None  # the owner lives: nothing happens
        owner.kill()
        owner.wait()
        assert daemon.wait(timeout=60) != 0  # killed by the watchdog
        assert watchdog.wait(timeout=60) == 0
    finally:
        for process in (owner, daemon, watchdog):
            process.kill()
            process.wait()
