"""A child's exit status within a deadline, its whole process group killed at it.

Its own small module (stdlib only, no dataclasses) because the start of an
SSH master uses it before the program has loaded (remote/early.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading


def wait_with_deadline(proc: subprocess.Popen, timeout: float) -> int | None:
    """The child's exit status, or None if it was still running at the deadline (its group is then killed).

    A blocking wait with a timer, not `Popen.wait(timeout)`: that one polls
    with sleeps of up to 50 ms, which every short ssh command would pay.
    """
    expired = threading.Event()

    def expire() -> None:
        if proc.returncode is None:  # not reaped yet: its pid (and group) are still its own
            expired.set()
            kill_pgid(proc.pid)

    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    timer.start()
    try:
        code = proc.wait()
    finally:
        timer.cancel()
    return None if expired.is_set() else code


def kill_pgid(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
