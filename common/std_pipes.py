"""Waiting until whatever reads this process's stdout/stderr pipes has taken every byte written.

A process that ends abruptly (os._exit from a watchdog) or whose output goes through a reader process
(coir.launch.rank_logs prefixes every line) would otherwise lose its last lines, the ones that say why
it ended.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import struct
import sys
import termios
import time


def _pending(fd: int) -> int:
    """Bytes written to the pipe on `fd` and not read yet (0 when `fd` is not a pipe)."""
    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return 0
        return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0])
    except OSError:
        return 0


def drain_std_pipes(timeout_s: float = 5.0) -> None:
    """Flush sys.stdout/sys.stderr, then wait (at most `timeout_s`) until their pipes are read empty."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    deadline = time.monotonic() + timeout_s
    while any(_pending(fd) for fd in (1, 2)) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # the reader writes out what it just took
