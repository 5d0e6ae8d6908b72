"""Per-rank log prefixes (coir.launch.rank_logs): every line a task writes, from Python, from C-level
writes, from child processes and progress-bar updates, carries the prefix, up to the last line of a
process that ends with os._exit (the hang watchdog's way out); SLURM's signals leave the readers alone."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PREFIX = "[rank 1/2 host n7 job 42_3 step 0 task 1] "

TASK = f"""
import logging, os, signal, subprocess, sys, time
from coir.launch.rank_logs import install_prefix
print("before install")
sys.stdout.flush()
install_prefix({PREFIX!r})
from coir.launch.rank_logs import _READERS as readers
for reader_pid in [reader.pid for reader in readers]:
    os.kill(reader_pid, signal.SIGUSR2)  # SLURM signals every process of a job step
    os.kill(reader_pid, signal.SIGTERM)
time.sleep(0.2)
print("python line", "readers", len(readers))
logging.basicConfig(level=logging.INFO)
logging.getLogger("x").info("a log record")
os.write(1, b"c-level write\\nsecond ")
os.write(1, b"half of a line\\n")
sys.stderr.write("progress 1\\rprogress 2\\rprogress 3\\n")
sys.stderr.flush()
subprocess.run(["echo", "from a child"], check=True)
print("last line before _exit", flush=True)
from coir.common.std_pipes import drain_std_pipes
drain_std_pipes()
os._exit(int(sys.argv[1]))
"""


def test_every_line_of_a_task_carries_the_prefix(tmp_path: Path) -> None:
    out, err = tmp_path / "task.out", tmp_path / "task.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        code = subprocess.run([sys.executable, "-c", TASK, "86"], stdout=stdout, stderr=stderr).returncode
    assert code == 86
    lines = [line for line in re.split(r"[\r\n]", out.read_text() + err.read_text()) if line]
    assert lines[0] == "before install"  # written before: untouched
    prefixed = lines[1:]
    bare = [line[len(PREFIX) :] for line in prefixed if line.startswith(PREFIX)]
    assert len(bare) == len(prefixed), [line for line in prefixed if not line.startswith(PREFIX)]
    for expected in (
        "python line readers 2",
        "c-level write",
        "second half of a line",
        "from a child",
        "last line before _exit",
        "progress 1",
        "progress 3",
    ):
        assert expected in bare, (expected, bare)
    assert any(line.endswith("a log record") for line in bare)
