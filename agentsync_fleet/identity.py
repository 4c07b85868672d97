"""Who runs agentsync, and whether a process recorded earlier (pid + start time) is still running.

A pid alone is not a process: pids are reused. Locks and journal rows store
the pid together with the kernel's start time of that process, so "holder
gone" is decided correctly even after the pid was handed to something else.
"""

from __future__ import annotations

import getpass
import os
import socket
from pathlib import Path


def controller() -> str:
    """This machine's name, as locks and the journal record it."""
    return socket.gethostname()


def user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers): the uid is still a name of sorts
        return str(os.getuid())


def who() -> str:
    """`user@controller`: the person (or agent account) behind a run or a lock."""
    return f"{user()}@{controller()}"


def _stat_fields(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name (field 3 onwards), [] if unknown."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return text.rsplit(")", 1)[-1].split()


def process_start(pid: int) -> str:
    """The kernel's start time of `pid` (clock ticks since boot, field 22), '' where /proc is unavailable."""
    fields = _stat_fields(pid)
    return fields[19] if len(fields) > 19 else ""


def process_alive(pid: int | None, start: str = "") -> bool:
    """Is the process that had `pid` (and, if known, started at `start`) still running on this machine?"""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists and belongs to someone else
    fields = _stat_fields(pid)
    if fields and fields[0] == "Z":  # a zombie has finished its work
        return False
    return not (start and fields and len(fields) > 19 and fields[19] != start)  # pid reused by another process
