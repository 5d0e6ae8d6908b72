"""Start and stop a private one-node SLURM (munged, slurmctld, slurmd) in a temporary folder.

Everything lives under one folder: slurm.conf, the munge key and socket, state, spool, logs and
pid files. The daemons listen on free non-default ports, so the testbed neither needs nor touches
a system SLURM. `SLURM_CONF` (exported by `start()`) points clients such as sbatch, srun, squeue
and submitit at it. Debian's packages are installed by launch/testbed/install_slurm.sh.

    with SlurmTestbed(tmp_dir) as slurm:
        subprocess.run(["sbatch", ...])

Two failures are kept apart: SlurmUnavailable (the binaries are missing and install_slurm.sh cannot
install them here: not root, no apt-get, no reachable repository; tests skip) and SlurmStartFailed
(SLURM is there but the daemons did not come up; the message carries their log tails; tests fail).

Every process of a testbed (daemons, slurmstepd, job tasks) carries COIR_TESTBED=<root> and
COIR_TESTBED_OWNER=<pid:start time of the owning process> in its environment. stop() kills what is
left of its own testbed. Should the owner die without stop() (a killed test session), a watchdog
process kills the testbed's processes, and munged and slurmctld get SIGTERM (PR_SET_PDEATHSIG;
slurmd ignores it); start() also kills what is left of testbeds whose owner died.
"""

from __future__ import annotations

import contextlib
import ctypes
import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from coir.common.atomic import write_text_atomic

SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "srun", "squeue", "scontrol", "scancel", "sinfo")
INSTALL_SCRIPT = Path(__file__).with_name("install_slurm.sh")
INSTALL_TIMEOUT_S = 900
# a loaded 2-core CI machine can take minutes to bring slurmctld and slurmd up (polled, not slept)
START_TIMEOUT_S = 300.0
MUNGE_TIMEOUT_S = 120.0
PORT_ATTEMPTS = 3  # a port picked free may be taken before the daemon binds it: pick again
MARK, OWNER = "COIR_TESTBED", "COIR_TESTBED_OWNER"


class SlurmUnavailable(RuntimeError):
    """SLURM is not installed and cannot be installed here; the message says why (tests skip)."""


class SlurmStartFailed(RuntimeError):
    """SLURM is installed but did not come up; the message has the daemons' log tails (tests fail)."""


def _which(name: str) -> str | None:
    return shutil.which(name, path=SBIN_PATH)


def _missing() -> list[str]:
    return [name for name in DAEMONS + CLIENTS if _which(name) is None]


def _free_ports(count: int) -> list[int]:
    """`count` distinct ports free now (all bound at once, so none is handed out twice)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def _memory_mb() -> int:
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return max(1024, int(pages / 2**20 * 0.9))


def _start_time(pid: int | str) -> str | None:
    """The start time of process `pid` (clock ticks since boot): with the pid, an identity that survives
    pid reuse. None when the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _marked_processes() -> list[tuple[int, dict[str, str]]]:
    """(pid, {MARK, OWNER}) of every process carrying a testbed mark (readable ones: ours, or all as root)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if MARK.encode() not in environ:
            continue
        values = {}
        for item in environ.split(b"\0"):
            key, _, value = item.partition(b"=")
            if key in (MARK.encode(), OWNER.encode()):
                values[key.decode()] = value.decode(errors="replace")
        if MARK in values:
            found.append((int(proc.name), values))
    return found


def _kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _owner_alive(owner: str) -> bool:
    pid, _, started = owner.partition(":")
    return bool(pid.isdigit()) and _start_time(pid) == started


def reap_orphans() -> list[int]:
    """Kill the processes of testbeds whose owning process is gone (a crashed earlier session)."""
    orphans = [pid for pid, values in _marked_processes() if not _owner_alive(values.get(OWNER, ""))]
    _kill(orphans)
    return orphans


try:
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl  # looked up here, not in the forked child
except (OSError, AttributeError):
    _PRCTL = None


def watch() -> None:
    """The watchdog process of a testbed (marked like its daemons): once the owner is gone without a
    stop() (a killed test session), kill every process of the testbed, then exit."""
    root, owner = os.environ[MARK], os.environ[OWNER]
    while _owner_alive(owner):
        time.sleep(1.0)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pids = [pid for pid, values in _marked_processes() if values[MARK] == root]
        if not pids:
            break
        _kill(pids)
        time.sleep(0.5)


def _die_with_parent() -> None:
    """preexec_fn: SIGTERM this daemon when the thread that started it (the test session) ends."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def install() -> None:
    """Run install_slurm.sh when binaries are missing. Raises SlurmUnavailable when it cannot install
    here (it exits 0 but they are still missing) and SlurmStartFailed when installing failed."""
    if not _missing():
        return
    try:
        result = subprocess.run(
            ["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as error:
        raise SlurmStartFailed(f"{INSTALL_SCRIPT} did not finish in {INSTALL_TIMEOUT_S} s") from error
    output = (result.stdout + result.stderr).strip()
    tail = "\n".join(output.splitlines()[-20:])
    if result.returncode != 0:
        raise SlurmStartFailed(f"{INSTALL_SCRIPT} failed (exit {result.returncode}):\n{tail}")
    missing = _missing()
    if missing:
        raise SlurmUnavailable(f"SLURM/munge not installed (missing {', '.join(missing)}) and {tail}")


class SlurmTestbed:
    """A private SLURM cluster of one node named after this host, address 127.0.0.1.

    cpus: CPUs the node advertises. It may exceed the machine's cores
    (`SlurmdParameters=config_overrides`), so that a 2-task job and a 3-task array fit on a
    2-core machine; tasks then share the cores.
    """

    def __init__(self, root: str | Path, cpus: int | None = None, partition: str = "debug") -> None:
        self.root = Path(root).resolve()
        self.cpus = cpus or max(4, os.cpu_count() or 1)
        self.partition = partition
        self.node = socket.gethostname().split(".")[0]
        self.conf = self.root / "slurm.conf"
        self.logs = self.root / "log"
        self.munge_socket = self.root / "munge" / "munge.socket.2"
        self._processes: dict[str, subprocess.Popen] = {}
        self._previous_env: dict[str, str | None] = {}
        self._releaser: threading.Thread | None = None
        self._watchdog: subprocess.Popen | None = None
        self._stopping = threading.Event()
        self.ports: list[int] = []

    # -- set-up ---------------------------------------------------------------------------------
    def check_installed(self) -> None:
        """Raises SlurmUnavailable when a binary is missing (without trying to install it)."""
        missing = _missing()
        if missing:
            raise SlurmUnavailable(
                f"SLURM/munge not installed (missing {', '.join(missing)}); "
                "run `bash launch/testbed/install_slurm.sh` as root (make test does)"
            )

    def write_config(self) -> None:
        """A fresh slurm.conf on new free ports; state, spool, logs and munge files of an earlier run in
        the same folder are removed first."""
        for folder in ("state", "spool", "log", "munge"):
            shutil.rmtree(self.root / folder, ignore_errors=True)
        for name in ("slurmctld.pid", "slurmd.pid"):
            (self.root / name).unlink(missing_ok=True)
        for folder in ("state", "spool", "log", "munge", "jobs"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        (self.root / "munge").chmod(0o700)
        user = getpass.getuser()
        self.ports = _free_ports(2)
        node_line = (
            f"NodeName={self.node} NodeAddr=127.0.0.1 NodeHostname={self.node} CPUs={self.cpus} "
            f"RealMemory={_memory_mb()} State=UNKNOWN"
        )
        text = f"""# generated by coir.launch.testbed: a private one-node SLURM for tests
ClusterName=coirtest
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={self.ports[0]}
SlurmdPort={self.ports[1]}
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={self.root / "state"}
SlurmdSpoolDir={self.root / "spool"}
SlurmctldPidFile={self.root / "slurmctld.pid"}
SlurmdPidFile={self.root / "slurmd.pid"}
SlurmctldLogFile={self.logs / "slurmctld.log"}
SlurmdLogFile={self.logs / "slurmd.log"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=2
MpiDefault=none
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
JobRequeue=1
MinJobAge=600
KillWait=30
InactiveLimit=0
SlurmctldTimeout=120
SlurmdTimeout=300
MessageTimeout=60
{node_line}
PartitionName={self.partition} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
"""
        write_text_atomic(self.conf, text)

    def _env(self) -> dict[str, str]:
        return dict(os.environ, PATH=SBIN_PATH, SLURM_CONF=str(self.conf), **self._marks())

    def _marks(self) -> dict[str, str]:
        return {MARK: str(self.root), OWNER: f"{os.getpid()}:{_start_time(os.getpid())}"}

    def _start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.logs / f"{name}.out", "ab")  # noqa: SIM115 - kept open for the daemon's life
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            cwd=self.root,
            preexec_fn=_die_with_parent,
        )
        log.close()
        self._processes[name] = process
        return process

    def _wait(self, what: str, ready, timeout: float) -> None:
        """Poll `ready()` until true; SlurmStartFailed (with the logs) on timeout or a daemon's exit."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            dead = {name: p.returncode for name, p in self._processes.items() if p.poll() is not None}
            if dead:
                exits = ", ".join(f"{name} exited with {code}" for name, code in dead.items())
                raise SlurmStartFailed(f"{what} did not come up: {exits}\n{self.daemon_logs()}")
            time.sleep(0.5)
        raise SlurmStartFailed(f"{what} did not come up within {timeout:.0f} s\n{self.daemon_logs()}")

    def log_tail(self, name: str, lines: int = 15) -> str:
        texts = []
        for path in sorted(self.logs.glob(f"{name}*")):
            content = path.read_text(errors="replace").splitlines()[-lines:]
            texts.append(f"--- {path.name}\n" + "\n".join(content))
        return "\n".join(texts) or f"(no {name} log)"

    def daemon_logs(self, lines: int = 25) -> str:
        return "\n".join(self.log_tail(name, lines) for name in ("munged", "slurmctld", "slurmd"))

    def start(self, timeout: float = START_TIMEOUT_S, install_missing: bool = True) -> SlurmTestbed:
        """Start munged, slurmctld and slurmd; return once the node is idle.

        Missing binaries are installed first (install_slurm.sh) unless `install_missing` is false.
        Raises SlurmUnavailable when SLURM is not installed and cannot be, SlurmStartFailed (after
        stopping whatever started) when the daemons do not come up within `timeout` s each.
        """
        if install_missing:
            install()
        self.check_installed()
        reap_orphans()
        self._stopping.clear()
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                self._start_daemons(timeout)
            except SlurmStartFailed as error:
                busy = "Address already in use" in str(error)
                self.stop()
                if busy and attempt < PORT_ATTEMPTS:
                    continue  # a port picked free was taken meanwhile: new ports
                raise
            except BaseException:
                self.stop()
                raise
            break
        self._export_env()
        return self

    def _start_daemons(self, timeout: float) -> None:
        self.write_config()
        env = self._env()
        with (self.logs / "watchdog.log").open("ab") as log:
            self._watchdog = subprocess.Popen(
                [sys.executable, "-c", "from coir.launch.testbed.slurm import watch; watch()"],
                env=env,
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        key = self.root / "munge" / "munge.key"
        try:
            subprocess.run(
                [_which("mungekey"), "--create", f"--keyfile={key}", "--force"],
                check=True,
                capture_output=True,
                env=env,
                timeout=120,
            )
        except subprocess.CalledProcessError as error:
            raise SlurmStartFailed(f"mungekey failed: {error.stderr.decode(errors='replace')}") from error
        except subprocess.TimeoutExpired as error:
            raise SlurmStartFailed(f"mungekey did not finish in {error.timeout:.0f} s") from error
        key.chmod(0o600)
        self._start(
            "munged",
            [
                _which("munged"),
                "--foreground",
                "--force",
                f"--socket={self.munge_socket}",
                f"--key-file={key}",
                f"--log-file={self.logs / 'munged.log'}",
                f"--pid-file={self.root / 'munge' / 'munged.pid'}",
                f"--seed-file={self.root / 'munge' / 'munged.seed'}",
            ],
            env,
        )
        self._wait("munged", self.munge_socket.exists, min(timeout, MUNGE_TIMEOUT_S))
        self._start("slurmctld", [_which("slurmctld"), "-D", "-c", "-i", "-f", str(self.conf)], env)
        self._wait("slurmctld", self._controller_answers, timeout)
        self._start("slurmd", [_which("slurmd"), "-D", "-f", str(self.conf), "-N", self.node], env)
        self._wait("slurmd", self._node_idle, timeout)

    def _query(self, *argv: str) -> str:
        try:
            result = subprocess.run(list(argv), capture_output=True, text=True, env=self._env(), timeout=30)
        except subprocess.TimeoutExpired:
            return ""
        return result.stdout if result.returncode == 0 else ""

    def _controller_answers(self) -> bool:
        return "UP" in self._query("scontrol", "ping")

    def node_state(self) -> str:
        return self._query("sinfo", "-h", "-N", "-o", "%T").strip()

    def _node_idle(self) -> bool:
        return self.node_state().startswith("idle")

    def release_requeued(self) -> list[str]:
        """Start requeued jobs now: SLURM holds a requeued job back for about two minutes (pending,
        reason BeginTime), a safety delay a test need not wait out. Returns the jobs released."""
        released = []
        for line in self._query("squeue", "-h", "-t", "PD", "-o", "%i %r").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == "BeginTime":
                self._query("scontrol", "update", f"JobId={parts[0]}", "StartTime=now")
                released.append(parts[0])
        return released

    def start_releasing(self, every_s: float = 1.0) -> None:
        """Call release_requeued in a background thread until stop()."""

        def loop() -> None:
            while not self._stopping.wait(every_s):
                self.release_requeued()

        self._releaser = threading.Thread(target=loop, name="slurm-testbed-release", daemon=True)
        self._releaser.start()

    def _export_env(self) -> None:
        """SLURM_CONF for the clients; the marks for jobs (sbatch exports the submitter's environment)."""
        for key, value in {"SLURM_CONF": str(self.conf), "PATH": SBIN_PATH, **self._marks()}.items():
            self._previous_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    # -- tear-down ------------------------------------------------------------------------------
    def stop(self) -> None:
        """Cancel remaining jobs, stop the daemons (slurmd, slurmctld, munged), kill whatever of this
        testbed is left (slurmstepd, job tasks) and restore the environment."""
        self._stopping.set()
        if self._releaser is not None:
            self._releaser.join(timeout=60)
            self._releaser = None
        if "slurmctld" in self._processes and self._processes["slurmctld"].poll() is None:
            self._query("scancel", "--full", f"--partition={self.partition}")
        for name in ("slurmd", "slurmctld", "munged"):
            process = self._processes.pop(name, None)
            if process is None:
                continue
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(OSError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=30)
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait(timeout=30)
            self._watchdog = None
        self.kill_leftovers()
        for key, value in self._previous_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._previous_env.clear()

    def leftovers(self) -> list[int]:
        """Pids of processes of this testbed still alive (daemons, slurmstepd, job tasks)."""
        return [pid for pid, values in _marked_processes() if values[MARK] == str(self.root)]

    def kill_leftovers(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while (pids := self.leftovers()) and time.monotonic() < deadline:
            _kill(pids)
            time.sleep(0.2)

    def __enter__(self) -> SlurmTestbed:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
