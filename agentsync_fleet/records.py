"""What happened: the records every layer shares — commands run, steps, host outcomes, probes, plans, reports.

These are plain data (frozen where they can be) with no I/O: the engine and
the features fill them in, the journal turns them into rows, `output/`
renders them. Keeping them here, apart from the code that talks to hosts,
lets a renderer or a query load without paramiko.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CommandRecord:
    """One command a step ran: what, how it ended, how long, the tail of its output."""

    command: str
    exit_code: int
    duration_s: float
    output_tail: str = ""


@dataclass
class StepRecord:
    """One step on one host: which stage, what it did, how it ended, and every command it ran."""

    stage: str
    action: str
    status: str = "ok"
    duration_s: float = 0.0
    detail: str = ""
    commands: list[CommandRecord] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # bytes/files moved, HEADs, ... per step kind


@dataclass
class HostSync:
    host: str
    status: str = "ok"  # ok | unreachable | conflict | guarded | failed | skipped
    head_before: str = ""
    head_after: str = ""
    origin_head: str | None = None  # origin's branch as this host last fetched it
    pulled: int = 0
    pushed: int = 0
    unpushed: int = 0
    stash_used: bool = False
    message: str = ""
    files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    worktrees: list[dict] = field(default_factory=list)
    plan: dict | None = None  # the dry run's predicted move (`sync.stages.plan_summary`)
    healed: list[str] = field(default_factory=list)  # what was put right from an earlier, cut-off move
    steps: list[StepRecord] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def active(self) -> bool:
        """Still eligible for later stages (nothing has gone wrong on this host)."""
        return self.status == "ok"

    def fail(self, status: str, message: str, files: list[str] | tuple[str, ...] = ()) -> None:
        self.status = status
        self.message = message
        self.files = list(files)


@dataclass(frozen=True)
class PlannedStep:
    """One line of the plan: a stage, a host, what it will do and the exact commands."""

    stage: str
    host: str
    action: str
    commands: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class SyncReport:
    run_id: str
    inventory: str
    dry_run: bool
    hosts: tuple[HostSync, ...]
    plan: tuple[PlannedStep, ...]
    duration_s: float
    origin_head: str = ""
    aborted: str = ""

    @property
    def ok(self) -> bool:
        return not self.aborted and all(h.status == "ok" for h in self.hosts)


@dataclass(frozen=True)
class HostOutcome:
    """How a host ended a task that is not a sync (health, status...); same shape as `HostSync`."""

    host: str
    status: str
    head_before: str = ""
    head_after: str = ""
    pulled: int = 0
    pushed: int = 0
    duration_s: float | None = None
    message: str = ""
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class RepoState:
    present: bool
    error: str = ""
    branch: str = ""
    head: str = ""
    upstream: str = ""
    ahead: int | None = None
    behind: int | None = None
    dirty: int = 0
    dirty_files: tuple[str, ...] = ()
    stashes: int = 0
    in_progress: tuple[str, ...] = ()
    fetched: bool = False
    fetch_error: str = ""
    git_version: tuple[int, int] | None = None  # gitversion.parse_git_version of the host's `git --version`
    leftover_intent: bool = False  # an agentsync move was cut off here: the next sync-all heals it (`heal.py`)
    leftover_scratch: tuple[str, ...] = ()

    @property
    def leftover(self) -> str:
        """What a cut-off move left, in words; empty when nothing."""
        parts = (["an unfinished move's intent record"] if self.leftover_intent else []) + \
            ([f"{len(self.leftover_scratch)} scratch worktree(s)"] if self.leftover_scratch else [])
        return " and ".join(parts)


@dataclass(frozen=True)
class ProcessInfo:
    pattern: str
    pid: int
    uptime_s: int | None  # None: the host's tools cannot tell (busybox ps)
    command: str


@dataclass(frozen=True)
class RunningJob:
    """A job running on a host (guardprobe.running_probe): while it runs, sync-all and push-code warn, and leave
    the paths it protects alone unless --allow-running."""

    id: str
    name: str
    pid: int
    protect: tuple[str, ...] = ()  # patterns relative to the repo, as guard.critical_files


@dataclass(frozen=True)
class GuardState:
    """What the guard saw (guardprobe.py): `ok` (processes is the whole truth) or `unknown` (it could not
    look: detail says why)."""

    status: str  # ok | unknown
    method: str = ""  # proc | ps | busybox-ps
    detail: str = ""
    processes: tuple[ProcessInfo, ...] = ()

    @property
    def unknown(self) -> bool:
        return self.status != "ok"


@dataclass(frozen=True)
class GpuInfo:
    name: str
    memory_used_mb: float | None
    memory_total_mb: float | None
    utilization_pct: float | None
    temperature_c: float | None


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    name: str
    used_memory_mb: float | None


@dataclass(frozen=True)
class ToolState:
    """State from an optional tool (zerotier-cli, nvidia-smi): `unavailable` when not installed."""

    status: str  # ok | unavailable | error | missing-network | not-ok
    detail: str = ""
    gpus: tuple[GpuInfo, ...] = ()
    processes: tuple[GpuProcess, ...] = ()


@dataclass(frozen=True)
class SystemState:
    disk_free_bytes: int | None = None
    disk_use_pct: int | None = None
    load: tuple[float, float, float] | None = None
    cpus: int | None = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckResult:
    """What one check found. `status`: pass | fail | timeout | error | unavailable (only pass passes)."""

    name: str
    kind: str
    status: str
    reason: str = ""  # why it did not pass, in words (`accuracy 0.652 < min 0.68`)
    value: float | None = None
    min: float | None = None
    max: float | None = None
    exit_code: int | None = None
    duration_s: float = 0.0
    output_tail: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "pass"


@dataclass(frozen=True)
class HostHealth:
    """Everything `health` learned about one host, and whether it passes the gate."""

    host: str
    target: str
    reachable: bool
    reason: str = ""  # why unreachable: dns, refused, timeout, auth, host key unknown/changed...
    error: str = ""
    hint: str = ""
    fingerprint: str = ""
    latency_ms: float | None = None
    repo: RepoState | None = None
    processes: tuple[ProcessInfo, ...] = ()
    guard: GuardState | None = None  # None: no guard processes configured
    system: SystemState | None = None
    zerotier: ToolState | None = None
    gpu: ToolState | None = None
    failures: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    duration_s: float = 0.0
    checks: tuple[CheckResult, ...] = ()  # the team's own checks (gate/), in inventory order
    allowed_untracked: tuple[str, ...] = ()  # untracked files allow_untracked lets pass
    not_running: tuple[str, ...] = ()  # guard patterns no process matched
    jobs: tuple[Any, ...] = ()  # the host's running and recently died jobs, from the jobs feature's probe
    running_jobs: tuple[RunningJob, ...] | None = ()  # jobs running there (guardprobe); None: not listed

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class HealthReport:
    hosts: tuple[HostHealth, ...]
    duration_s: float
    inventory: str = ""
    fetched: bool = True
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return all(h.passed for h in self.hosts)


@dataclass
class StepLog:
    """Commands run for one host, in order; `announce` feeds the live view."""

    records: list[CommandRecord] = field(default_factory=list)
    announce: Callable[[str], None] = lambda text: None


def worst_status(failed: list[str] | tuple[str, ...]) -> str:
    """How a host ended from the statuses of its parts that failed: `unreachable` only if every one was."""
    if not failed:
        return "ok"
    return "unreachable" if all(status == "unreachable" for status in failed) else "failed"
