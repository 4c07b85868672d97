"""The run journal: every fleet task is recorded in SQLite, steps as they finish.

The CLI opens a recording around each task (`recording`); the task's
`FleetArgs.load()` calls `attach(inventory)`, which opens the journal in
that inventory's state dir. Code that runs sync-engine stages needs nothing
more: `RunContext` takes `observer()` and `current_run_id()` as defaults,
so steps are journaled the moment `engine.stage.step()` finishes them.
Stages that move data put `bytes` and `files` (counts) into
`StepRecord.data`; the journal keeps the whole dict and shows those two.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..records import HostOutcome
from .recorder import RunRecorder, new_run_id

_active: RunRecorder | None = None


class NullObserver:
    """What the engine talks to when nothing is being recorded (library use, unit tests)."""

    def step_done(self, host: str, record: Any, result: Any = None) -> None:
        pass

    def host_done(self, result: Any) -> None:
        pass


@contextmanager
def recording(task: str, arguments: dict[str, Any],
              warn: Callable[[str], None] = lambda text: None) -> Iterator[RunRecorder]:
    """Make a recorder the process's active run for the duration of one CLI task."""
    global _active
    previous, _active = _active, RunRecorder(task, arguments, warn=warn)
    try:
        yield _active
    finally:
        _active = previous


def active() -> RunRecorder | None:
    return _active


def attach(inv) -> None:
    if _active is not None:
        _active.attach(inv)


def observer() -> RunRecorder | NullObserver:
    return _active if _active is not None else NullObserver()


def current_run_id() -> str:
    """The active run's id (so a sync report and its history entry share it), else a fresh one."""
    return _active.run_id if _active is not None else new_run_id()


def annotate(**fields: Any) -> None:
    if _active is not None:
        _active.annotate(**fields)


def record_step(host: str, record: Any, result: Any = None) -> None:
    """A step of a task that does not run sync stages, as it finishes (a `StepRecord`)."""
    if _active is not None:
        _active.step_done(host, record, result)


def record_host(outcome: HostOutcome) -> None:
    """How one host ended a task that does not run sync stages (health, status...)."""
    if _active is not None:
        _active.host_done(outcome)


def record_health(report) -> None:
    """A host row per host of a health/status probe: ok if it passed the gate."""
    for h in report.hosts:
        status = "ok" if h.passed else ("unreachable" if not h.reachable else "failed")
        head = h.repo.head if h.repo else ""
        record_host(HostOutcome(h.host, status, head, head, duration_s=round(h.duration_s, 3),
                                message="; ".join(h.failures), warnings=tuple(h.warnings)))
