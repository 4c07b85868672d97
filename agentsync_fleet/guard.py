"""Guards: never change a critical file under a running production process, or a path a running job protects.

`critical_paths` is pure (which changed paths are critical), and so is
`guarded_paths` (which touched paths are held now, by whom); `guard_reader`
returns what a move's facts read from the guard (`moves.read_move_facts`): the
host's processes and running jobs *at that moment* (one round trip,
`guardprobe.py`), or that they cannot be seen; `moveplan.plan_move` decides.
A guard that cannot see the host's processes refuses too: fail closed.
"""

from __future__ import annotations

import fnmatch

from .gitfacts import Process
from .guardprobe import GuardState, guard_probe, parse_guard, parse_running, running_probe
from .models import Host
from .moveplan import MovePlan
from .moves import GuardReader
from .records import RunningJob
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


def guard_script(host: Host, with_processes: bool) -> str:
    """One round trip: the jobs running on the host and, when asked, its guard processes."""
    return "\n".join((guard_probe(host) if with_processes else []) + running_probe()) + "\n"


def parse_guard_script(host: Host, output: str, with_processes: bool
                       ) -> tuple[GuardState | None, tuple[RunningJob, ...] | None]:
    parts = split_sections(output)
    state = parse_guard(parts.get("guard", ""), host.guard.processes) if with_processes else None
    return state, parse_running(parts.get("running", ""))


def guarded_paths(paths: set[str] | list[str], host: Host, state: GuardState | None,
                  jobs: tuple[RunningJob, ...] | None) -> tuple[tuple[str, ...], tuple[Process, ...], str]:
    """Of the paths a change touches: the ones it must not change now, who holds them, and why that cannot be
    seen (empty when it can). Pure: the one rule for sync-all's moves and push-code.

    A path is held while a guard process runs and it is in guard.critical_files, or while a job runs
    on the host that lists it in its `protect:`. A guard that cannot see processes holds its critical
    files; jobs that cannot be listed hold every path (either might protect it: fail closed).
    """
    critical = critical_paths(set(paths), host) if host.guard.processes else []
    held: set[str] = set()
    holders: list[Process] = []
    blind = ""
    if critical and state is not None and state.unknown:
        held.update(critical)
        blind = f"cannot see processes on {host.name} ({state.detail})"
    elif critical and state is not None and state.processes:
        held.update(critical)
        holders += [Process(p.pid, p.command, p.pattern) for p in state.processes]
    if jobs is None:
        held.update(paths)
        blind = blind or f"cannot list the jobs running on {host.name}"
    for job in jobs or ():
        mine = [p for p in paths if is_critical(p, job.protect)]
        if mine:
            held.update(mine)
            holders.append(Process(job.pid, f"agentsync job {job.id} (`agentsync cancel {job.id}` ends it)",
                                   f"job {job.name}"))
    return tuple(sorted(held)), tuple(holders), blind


def guard_reader(session, host: Host) -> GuardReader:
    """What the move's facts need from the guard: of the paths a move touches, the ones held now (critical
    files under a running guard process, paths a running job protects), who holds them, and why that cannot be
    seen. One round trip when the move is about to be decided: the jobs running there, and the guard's
    processes only when a critical path is touched."""

    def read(paths: set[str]) -> tuple[tuple[str, ...], tuple[Process, ...], str]:
        with_processes = bool(host.guard.processes and critical_paths(paths, host))
        result = session.run_script(guard_script(host, with_processes), timeout=host.command_timeout)
        state, jobs = parse_guard_script(host, result.stdout, with_processes)
        return guarded_paths(paths, host, state, jobs)

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


def running_job_warnings(jobs: tuple[RunningJob, ...] | None) -> list[str]:
    """What sync-all and push-code always say about a host where jobs run (None: they could not be listed)."""
    if jobs is None:
        return ["cannot list the jobs running here: the paths they protect are not changed unless --allow-running"]
    return [f"job {j.name} ({j.id}) is running here" + (f"; it protects {', '.join(j.protect)}" if j.protect else "")
            for j in jobs]
