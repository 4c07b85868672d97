"""Who runs agentsync, and whether a process recorded earlier (pid + start time) is still running.

A pid alone is not a process: pids are reused. Locks and journal rows store
the pid together with the kernel's start time of that process, so "holder
gone" is decided correctly even after the pid was handed to something else.
Nor is a hostname a process table: containers that share the host's network
share its name but not its pids, and cloned VMs share names too. So the
stored start time also names the machine and PID namespace it belongs to
(`process_stamp`); a pid from another one cannot be checked from here.
"""

from __future__ import annotations

import getpass
import os
import socket
import time
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


def process_table() -> str:
    """This machine (its systemd machine id) and PID namespace: where a pid means something."""
    try:
        machine = Path("/etc/machine-id").read_text().strip()[:12]
    except OSError:
        machine = ""
    try:
        namespace = os.readlink("/proc/self/ns/pid").removeprefix("pid:").strip("[]")
    except OSError:
        namespace = ""
    return f"{machine}/{namespace}" if machine or namespace else ""


def process_stamp(pid: int) -> str:
    """`process_start(pid)@process_table()`: what locks and the journal store beside a pid of this process table."""
    start, table = process_start(pid), process_table()
    return f"{start}@{table}" if start and table else start


def process_alive(pid: int | None, start: str = "") -> bool:
    """Is the process that had `pid` (and, if known, started at `start`) still running, or may it be?

    A process of another machine or PID namespace cannot be seen from here: it is presumed alive.
    """
    return process_running(pid, start) is not False


def process_running(pid: int | None, start: str = "") -> bool | None:
    """True: that process runs here; False: it is gone; None: it belongs to another machine or PID namespace.

    `start` is a `process_stamp` (or a bare start time, as older records have it).
    """
    if not pid or pid <= 0:
        return False
    start, _, table = (start or "").partition("@")
    if table and table != process_table():
        return None
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


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + os.urandom(3).hex()  # not uuid: it imports platform (slow start)
