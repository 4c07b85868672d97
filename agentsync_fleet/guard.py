"""Guards: never change a critical file under a running production process.

`critical_paths` is pure (which changed paths are critical); `make_guard`
returns the callback `gitops.move` consults, which looks at the host's
processes *at that moment* (one round trip, `guardprobe.py`) before refusing.
A guard that cannot see the host's processes refuses too: fail closed.
"""

from __future__ import annotations

import fnmatch

from .gitops import Guard
from .guardprobe import GuardState, guard_probe, parse_guard
from .models import Host
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


def blind_refusal(host: Host, critical: list[str], state: GuardState) -> str:
    return (f"refused: cannot see processes on {host.name} ({state.detail}), so {', '.join(critical)} may be in use "
            "by a guard process; nothing was changed. Fix what the guard needs on that host (see "
            "`agentsync health`), or rerun with --allow-running")


def make_guard(session, host: Host, allow_running: bool, refusals: list[dict]) -> Guard:
    """The callback for `gitops.move`: a refusal message when a critical file would change under a process."""

    def check(paths: set[str]) -> str | None:
        if not host.guard.processes or not host.guard.critical_files:
            return None
        critical = critical_paths(paths, host)
        if not critical:
            return None
        state = running_guard_processes(session, host)
        if state.unknown:
            refusals.append({"allowed": allow_running, "files": critical, "unknown": state.detail})
            return None if allow_running else blind_refusal(host, critical, state)
        if not state.processes:
            return None
        proc = state.processes[0]
        if allow_running:
            refusals.append({"allowed": True, "files": critical, "pid": proc.pid, "command": proc.command})
            return None
        refusals.append({"allowed": False, "files": critical, "pid": proc.pid, "command": proc.command,
                         "pattern": proc.pattern})
        return (f"refused: {', '.join(critical)} would change while '{proc.pattern}' runs "
                f"(pid {proc.pid}: {proc.command}); nothing was changed. Stop it yourself first, or rerun "
                "with --allow-running")

    return check
