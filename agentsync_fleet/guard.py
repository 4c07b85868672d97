"""Guards: never change a critical file under a running production process.

`critical_paths` is pure (which changed paths are critical); `guard_reader`
returns what a move's facts read from the guard (`moves.read_move_facts`): the
host's processes *at that moment* (one round trip, `guardprobe.py`), or that
they cannot be seen; `moveplan.plan_move` decides. A guard that cannot see
the host's processes refuses too: fail closed.
"""

from __future__ import annotations

import fnmatch

from .gitfacts import Process
from .guardprobe import GuardState, guard_probe, parse_guard
from .models import Host
from .moveplan import MovePlan
from .moves import GuardReader
from .shell import split_sections


def is_critical(path: str, patterns: tuple[str, ...]) -> bool:
    """Exact path, a directory prefix (`apps/runtime/`), or a glob (`apps/*/v7_*.py`)."""
    for pattern in patterns:
        pattern = pattern.removeprefix("./")
        if path == pattern or fnmatch.fnmatchcase(path, pattern):
            return True
        if path.startswith(pattern.rstrip("/") + "/"):
            return True
    return False


def critical_paths(paths: set[str], host: Host) -> list[str]:
    return sorted(p for p in paths if is_critical(p, host.guard.critical_files))


def running_guard_processes(session, host: Host) -> GuardState:
    script = "\n".join(guard_probe(host)) + "\n"
    result = session.run_script(script, timeout=host.command_timeout)
    return parse_guard(split_sections(result.stdout).get("guard", ""), host.guard.processes)


def guard_reader(session, host: Host) -> GuardReader | None:
    """What the move's facts need from the guard: of the paths a move touches, the critical ones, the guard
    processes running *now*, and why they cannot be seen (empty when they can). One round trip, only when a
    critical path is touched."""
    if not host.guard.processes or not host.guard.critical_files:
        return None

    def read(paths: set[str]) -> tuple[tuple[str, ...], tuple[Process, ...], str]:
        critical = tuple(critical_paths(paths, host))
        if not critical:
            return (), (), ""
        state = running_guard_processes(session, host)
        if state.unknown:
            return critical, (), f"cannot see processes on {host.name} ({state.detail})"
        return critical, tuple(Process(p.pid, p.command, p.pattern) for p in state.processes), ""

    return read


def guard_notes(plan: MovePlan | None) -> list[dict]:
    """The guard verdict as the step records it (and `--allow-running` warns about)."""
    if plan is None or plan.guard is None:
        return []
    g = plan.guard
    if g.unknown:
        return [{"allowed": g.allowed, "files": list(g.files), "unknown": g.unknown}]
    return [{"allowed": g.allowed, "files": list(g.files), "pid": g.process.pid, "command": g.process.command,
             "pattern": g.process.pattern}]
