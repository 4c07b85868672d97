"""The state of one sync run: per-host outcome records, the run context, and the final report.

`HostSync` is the one mutable record per host; only the thread working on
that host writes it (stages are serial or per-host parallel, never both on
one host), and it is frozen into the report at the end.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..gitops import CommandRecord
from ..models import Host, Inventory

FINAL_BAD = ("unreachable", "conflict", "guarded", "failed", "skipped")


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
    plan: dict | None = None  # the dry run's predicted move (`stages.plan_summary`)
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
class SyncOptions:
    dry_run: bool = False
    strict: bool = False
    allow_running: bool = False
    workers: int | None = None
    only_stages: tuple[str, ...] = ()  # e.g. ("publish",) for `push`, ("converge",) for `pull`
    resume: bool = False


Listener = Callable[[str, str, str], None]  # (host, stage, text)


def _journal_run_id() -> str:
    from ..journal import current_run_id

    return current_run_id()


def _journal_observer():
    """The active run's journal recorder: `step_done(host, StepRecord, HostSync)`, `host_done(HostSync)`."""
    from ..journal import observer

    return observer()


@dataclass
class RunContext:
    """Everything a stage needs: the inventory, connections, options, and the per-host records."""

    inventory: Inventory
    hosts: list[Host]
    connector: Any
    options: SyncOptions
    listener: Listener = lambda host, stage, text: None
    run_id: str = field(default_factory=_journal_run_id)
    results: dict[str, HostSync] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)  # preflight HostHealth per host
    move_plans: dict[str, Any] = field(default_factory=dict)  # dry run: each host's MovePlan, read after preflight
    stopping: threading.Event = field(default_factory=threading.Event)  # set on an interrupt: no new move starts
    lock: threading.Lock = field(default_factory=threading.Lock)
    observer: Any = field(default_factory=_journal_observer)  # told about every step as it ends (journal)

    def result(self, host: Host) -> HostSync:
        return self.results.setdefault(host.name, HostSync(host.name))

    def active_hosts(self) -> list[Host]:
        return [h for h in self.hosts if self.result(h).active]


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
