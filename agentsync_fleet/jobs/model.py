"""Jobs as data: what was started where, and what state it is in. Pure: no I/O, no printing.

A job's record lives on its host (see `scripts.py`): what the controller
knew when it started it (`JobSpec`), and what the host wrote as it ran
(pid, process group, the process's start time, exit status). Its state is
decided here from those facts, so the rule is written once:

* `running`  — no exit status yet, and the recorded process (pid *and* start
  time) or the wrapper that waits for it is still there;
* `exited N` — the wrapper wrote the exit status N;
* `killed (SIGxxx)` — the status says the job died of a signal (128 + n);
* `lost`     — no exit status, and neither the process nor its wrapper
  exists any more (killed from outside, OOM, a reboot).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
from dataclasses import dataclass, field

from ..errors import FleetError, UsageError
from ..models import Host
from ..schema import protect_problem

NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ONE_WORD = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")  # a COMMAND that may be a preset's name (or a typo of one)
RECENT_S = 24 * 3600  # `jobs` without --all: running and lost jobs, and those that ended within a day


class JobRefused(FleetError):
    """`run` would start a job where it must not (a job of that name runs, the GPU is busy...)."""


@dataclass(frozen=True)
class JobSpec:
    """What `run` starts: everything the controller decides before the host is reached."""

    id: str
    host: str
    name: str
    command: str
    cwd: str
    env: tuple[tuple[str, str], ...] = ()
    results: bool = False
    preset: str = ""
    who: str = ""
    program: str = ""  # a one-word COMMAND on a host with presets: the host refuses it unless it has this program
    protect: tuple[str, ...] = ()  # paths (relative to the repo) sync-all and push-code leave alone while it runs

    def record(self) -> dict:
        """The controller's part of the record on the host (env values stay out: they may be tokens)."""
        return {"id": self.id, "host": self.host, "name": self.name, "command": self.command, "cwd": self.cwd,
                "env": [k for k, _ in self.env], "results": self.results,
                "preset": self.preset, "who": self.who, "protect": list(self.protect)}


@dataclass(frozen=True)
class Window:
    """Which of a host's ended jobs a listing reads in full; the others cost it only builtins, or nothing.

    Jobs are never pruned, so a host keeps every record it ever had, and the one read that forks (the log's
    last line: `tail`, `od`...) must not be paid for each of them. A job is read in full when it has no exit
    status, or ended at or after the cutoff: `recent_s` before the host's clock, or the earliest of `since`
    (host epochs) when that is earlier. An older ended job is listed without its last line, or left out
    altogether with `omit_older`. `recent_s=None` reads every job in full (`jobs --all`).
    """

    recent_s: int | None = RECENT_S
    since: tuple[int, ...] = ()
    omit_older: bool = False

    @classmethod
    def everything(cls) -> Window:
        return cls(recent_s=None)


@dataclass(frozen=True)
class GpuUse:
    """One compute process on a GPU host: pid, MiB in use, and the session it belongs to (a job's pid)."""

    pid: int
    used_mib: float
    session: int = 0
    name: str = ""


@dataclass(frozen=True)
class Job:
    """One job as its host reports it now."""

    id: str
    host: str
    name: str
    command: str
    cwd: str
    state: str  # running | exited | killed | lost
    exit_code: int | None = None
    signal: str = ""
    started: float | None = None
    ended: float | None = None
    runtime_s: float | None = None
    pid: int | None = None
    pgid: int | None = None
    process_start: str = ""
    head: str = ""
    dirty: bool | None = None
    who: str = ""
    tmux: str = ""
    last_line: str = ""
    gpu_mib: float | None = None
    results: bool = False
    preset: str = ""
    cancel: str = ""  # the signal cancel sent, if any
    env: tuple[str, ...] = field(default_factory=tuple)
    protect: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """`running`, `exited 0`, `exited 3`, `killed (SIGTERM)`, `lost`."""
        if self.state == "exited":
            return f"exited {self.exit_code}"
        if self.state == "killed":
            return f"killed ({self.signal})"
        return self.state

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def status_code(self) -> int:
        """The exit status `wait` returns: the job's own, 128+n for a signal, 1 for a lost job."""
        if self.state in ("exited", "killed") and self.exit_code is not None:
            return self.exit_code
        return 1


def new_job_id() -> str:
    return os.urandom(4).hex()  # 8 hex digits (uuid would import platform, slow at start-up)


def check_name(name: str) -> str:
    if not NAME.match(name or ""):
        raise UsageError(f"job name {name!r} is not usable: letters, digits, '_' and '-' only (at most 64), "
                         "not starting with '-'", hint="e.g. --name tirex-val")
    return name


def default_name(command: str) -> str:
    """A name from the command's program (`python -m x` → python), else `job`."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    words = [w for w in words if not ENV_NAME.match(w.split("=", 1)[0]) or "=" not in w]
    program = (words[0].rsplit("/", 1)[-1] if words else "")
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "", program)[:40].lstrip("-")
    return cleaned or "job"


def check_command(command: str) -> str:
    if not (command or "").strip():
        raise UsageError("COMMAND is empty", hint="e.g. agentsync run gpu 'python -m sage.tirex_validation'")
    if "\0" in command:
        raise UsageError("COMMAND contains a NUL byte, which no shell can run")
    return command


def parse_env(items: list[str] | tuple[str, ...] | None) -> tuple[tuple[str, str], ...]:
    """`--env K=V` items → ((K, V), ...); a bad name is a UsageError."""
    pairs = []
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not ENV_NAME.match(key):
            raise UsageError(f"--env {item!r} is not NAME=VALUE (NAME: letters, digits, '_', not starting "
                             "with a digit)", hint="e.g. --env CUDA_VISIBLE_DEVICES=0")
        if "\0" in value:
            raise UsageError(f"--env {key}: the value contains a NUL byte")
        pairs.append((key, value))
    return tuple(pairs)


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def state_of(exit_code: int | None, process_alive: bool, wrapper_alive: bool) -> tuple[str, str]:
    """(state, signal name) from the facts; see the module docstring."""
    if exit_code is not None:
        if exit_code > 128 and (exit_code - 128) in {s.value for s in signal.Signals}:
            return "killed", signal_name(exit_code - 128)
        return "exited", ""
    if process_alive or wrapper_alive:
        return "running", ""
    return "lost", ""


def shown(jobs: list[Job], now_by_host: dict[str, float], show_all: bool) -> list[Job]:
    """`jobs` without --all: running and lost jobs, and those that ended in the last day."""
    if show_all:
        return jobs
    return [j for j in jobs if j.state in ("running", "lost") or j.ended is None
            or now_by_host.get(j.host, j.ended) - j.ended <= RECENT_S]


def resolve(jobs: list[Job], ref: str) -> Job:
    """The one job `ref` means: an id, a unique id prefix, or a name (the newest job of that name).

    A name shared by jobs on several hosts is ambiguous unless only one of them runs.
    """
    ref = (ref or "").strip()
    if not ref:
        raise UsageError("JOB is empty", hint="give a job id, a unique prefix of one, or a job name (see `agentsync jobs`)")
    exact = [j for j in jobs if j.id == ref]
    if exact:
        return exact[0]
    prefixed = [j for j in jobs if j.id.startswith(ref)]
    if len(prefixed) == 1:
        return prefixed[0]
    named = sorted((j for j in jobs if j.name == ref), key=lambda j: j.started or 0.0, reverse=True)
    if named:
        hosts = {j.host for j in named}
        running = [j for j in named if j.running]
        if len(hosts) == 1:
            return running[0] if running else named[0]
        if len(running) == 1:
            return running[0]
        raise UsageError(f"job name {ref!r} is used on several hosts ({', '.join(sorted(hosts))})",
                         hint="give its id instead (see `agentsync jobs --all`), or limit with --host")
    if len(prefixed) > 1:
        raise UsageError(f"{ref!r} is a prefix of several job ids: {', '.join(j.id for j in prefixed[:6])}",
                         hint="type more of the id")
    raise UsageError(f"no job {ref!r} on the hosts looked at", hint="see `agentsync jobs --all` for every job")


def busy_message(host: str, apps: list[GpuUse], total_mib: float) -> str:
    used = sum(a.used_mib for a in apps)
    who = ", ".join(f"pid {a.pid} {a.name or '?'} ({a.used_mib:.0f} MiB)" for a in apps) or "unknown processes"
    return (f"the GPU on {host} is busy: {used:.0f} of {total_mib:.0f} MiB held by {who}")


def working_dir(repo: str, cwd: str | None) -> str:
    """--cwd as the host sees it: the repo by default; relative paths are relative to the repo."""
    if not cwd:
        return repo
    if cwd.startswith(("/", "~")):
        return cwd
    return f"{repo.rstrip('/')}/{cwd}"


def plan(host: Host, command: str, *, name: str | None = None, cwd: str | None = None,
         env: tuple[tuple[str, str], ...] = (), who: str = "", job_id: str | None = None,
         literal: bool = False, protect: tuple[str, ...] = ()) -> JobSpec:
    """The job `run` starts on `host`: COMMAND as typed, or the host's preset of that name.

    A COMMAND that is exactly the name of one of the host's `jobs:` presets
    runs that preset (its own cwd, env and results; flags given on the
    command line win; `protect` adds to the preset's). `literal` runs
    COMMAND as typed, never as a preset.
    See `preset_typo` for the one-word COMMANDs that are refused.
    """
    preset = None if literal else next((p for p in host.jobs if p.name == command.strip()), None)
    program = "" if literal or preset else preset_typo(host, command)
    text = check_command(preset.run if preset else command)
    chosen = check_name(name if name is not None else (preset.name if preset else default_name(text)))
    merged_env = dict(preset.env if preset else ())
    merged_env.update(dict(env))
    return JobSpec(id=job_id or new_job_id(), host=host.name, name=chosen, command=text,
                   cwd=working_dir(host.repo, cwd or (preset.cwd if preset else None)),
                   env=tuple(merged_env.items()),
                   results=bool(preset and preset.results), preset=preset.name if preset else "", who=who,
                   program=program,
                   protect=tuple(dict.fromkeys([*(preset.protect if preset else ()), *map(check_protect, protect)])))


def check_protect(path: str) -> str:
    """A `--protect` path: relative to the host's repo, like guard.critical_files (a file, a directory/, a glob)."""
    problem = protect_problem(path)
    if problem:
        raise UsageError(f"--protect {path!r} {problem}", hint="e.g. --protect results/ --protect data/*.parquet")
    return path.removeprefix("./")


def preset_typo(host: Host, command: str) -> str:
    """The rule that keeps a preset's typo from running as a shell command (`agentsync run gpu tirx`).

    On a host with presets, a COMMAND that is one plain word (letters,
    digits, `_ . + -`; no `/`, no space) and no preset's name is:
    refused here when it is a near miss of a preset name (`near_miss`:
    `tirx` for `tirex`); else returned, and the host refuses it unless it
    has a program or builtin of that name (`command -v`). `--literal` skips
    the rule. Anything else (two words, a path) runs as typed.
    """
    word = command.strip()
    if not host.jobs or not ONE_WORD.match(word):
        return ""
    names = [p.name for p in host.jobs]
    close = [n for n in names if near_miss(word, n)]
    if close:
        raise UsageError(f"unknown preset {word!r} (did you mean {close[0]}?)",
                         hint=f"presets on {host.name}: {', '.join(names)}; to run {word!r} as a command, "
                              f"not a preset: agentsync run {host.name} {word} --literal")
    return word


def near_miss(word: str, name: str) -> bool:
    """A typo of `name`: at most one edit away (two for names of six letters or more), ignoring case; an
    edit is a letter left out, added, changed, or two neighbours swapped."""
    a, b = word.lower(), name.lower()
    allowed = 2 if len(b) >= 6 else 1
    if abs(len(a) - len(b)) > allowed:
        return False
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            row[j] = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1] <= allowed


def unknown_program(host: Host, word: str) -> UsageError:
    """The host's answer to `preset_typo`'s word: it has no such program either."""
    return UsageError(f"unknown preset {word!r}: {host.name} has no command of that name either",
                      host=host.name, hint=f"presets on {host.name}: {', '.join(p.name for p in host.jobs)}; "
                                           f"to run it as typed anyway: agentsync run {host.name} {word} --literal")
