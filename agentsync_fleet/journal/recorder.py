"""Recording one run as it happens: the run row, a row per step as it ends, a row per host at the end.

A `RunRecorder` is created by the CLI for every fleet task; it opens the
journal once the task has loaded its inventory (the inventory decides the
state dir). It is also the sync engine's observer: `step_done` is called by
`engine.stage.step()` the moment a step ends. The journal is a record, not a
gate: if it cannot be written the run goes on and a warning says so.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from typing import Any

from ..identity import controller, new_run_id, process_stamp, who
from ..settings import state_dir
from .store import Journal, JournalError


def moved(data: dict[str, Any]) -> tuple[int | None, int | None]:
    """(bytes, files) a step moved, from the `bytes` / `files` keys stages put in `StepRecord.data`."""

    def number(value: Any) -> int | None:
        if isinstance(value, bool):
            return None
        if isinstance(value, (int, float)):
            return int(value)
        if isinstance(value, (list, tuple, set)):
            return len(value)
        return None

    return number(data.get("bytes")), number(data.get("files"))


def step_row(run_id: str, host: str, record: Any, result: Any = None, ended: float | None = None) -> dict[str, Any]:
    """A journal row from a `StepRecord` (and the host's `HostSync` for the error text and HEAD)."""
    ended = ended or time.time()
    commands = [asdict(c) if is_dataclass(c) else dict(c) for c in record.commands]
    failed = record.status != "ok"
    exit_code = None
    if commands:
        nonzero = [c["exit_code"] for c in commands if c.get("exit_code")]
        exit_code = (nonzero[-1] if nonzero else commands[-1].get("exit_code")) if failed else 0
    data = dict(record.data)
    size, count = moved(data)
    error = ""
    if failed:  # the step's own account if it gave one (artifacts do), else why the host stopped
        error = record.detail or getattr(result, "message", "") or record.status
    return {
        "run_id": run_id, "host": host, "stage": record.stage, "action": record.action, "status": record.status,
        "started": ended - (record.duration_s or 0.0), "ended": ended, "duration_s": record.duration_s,
        "exit_code": exit_code,
        "head_before": str(data.get("head_before") or getattr(result, "head_before", "") or ""),
        "head_after": str(data.get("head_after") or ""),
        "bytes": size, "files": count, "commands": commands, "data": data, "detail": record.detail,
        "error": error,
    }


def host_row(run_id: str, result: Any) -> dict[str, Any]:
    """A journal row from a `HostSync` (how the host ended the run)."""
    return {
        "run_id": run_id, "host": result.host, "status": result.status, "head_before": result.head_before or "",
        "head_after": result.head_after or "", "pulled": result.pulled, "pushed": result.pushed,
        "duration_s": result.duration_s, "message": result.message, "warnings": list(result.warnings),
        "ended": time.time(),
    }


class RunRecorder:
    """The journal side of one CLI run."""

    def __init__(self, task: str, arguments: dict[str, Any], run_id: str | None = None,
                 warn: Callable[[str], None] = lambda text: None):
        self.task = task
        self.warn = warn  # how a journal that cannot be written is told, once (the CLI prints it)
        self.arguments = arguments
        self.run_id = run_id or new_run_id()
        self.started = time.time()
        self.inventory = None
        self.journal: Journal | None = None
        self.extra: dict[str, Any] = {}
        self.problem = ""

    def attach(self, inv) -> None:
        """The task loaded its inventory: open the journal in its state dir and write the run row."""
        if self.inventory is not None:
            return
        self.inventory = inv
        try:
            journal = Journal.in_dir(state_dir(inv))
            journal.reconcile()
            journal.start_run({
                "id": self.run_id, "task": self.task, "args": self.arguments, "started": self.started,
                "status": "running", "who": who(), "controller": controller(), "pid": os.getpid(),
                "pid_start": process_stamp(os.getpid()), "inventory": str(os.path.abspath(inv.path)),
                "inventory_sha256": inv.sha256,
            })
        except JournalError as exc:
            self._lost(exc)
            return
        self.journal = journal

    # ------------------------------------------------------------ sync engine observer

    def step_done(self, host: str, record: Any, result: Any = None) -> None:
        self._write(lambda j: j.add_step(step_row(self.run_id, host, record, result)))

    def host_done(self, result: Any) -> None:
        self._write(lambda j: j.put_host(host_row(self.run_id, result)))

    # ------------------------------------------------------------ the run

    def annotate(self, **fields: Any) -> None:
        """Facts about the whole run (hosts, origin head, resumed run, notify...), written at once to `extra`."""
        self.extra.update(fields)
        self._write(lambda j: j.set_extra(self.run_id, self.extra))

    def finish(self, status: str, exit_code: int | None, message: str = "") -> None:
        self._write(lambda j: j.finish_run(self.run_id, status, exit_code, message[:4000], self.extra))
        if self.journal is not None:
            self.journal.close()
            self.journal = None

    def _write(self, action) -> None:
        if self.journal is None:
            return
        try:
            action(self.journal)
        except JournalError as exc:
            self._lost(exc)

    def _lost(self, exc: JournalError) -> None:
        """Say once that the journal is not being written; the fleet task itself goes on."""
        self.journal = None
        if not self.problem:
            self.problem = str(exc)
            self.warn(f"{exc}\n  this run is not (fully) recorded in the history")


class NullRecorder:
    """A task that is not recorded (it only reads the journal, or runs as a library): the same calls, no writes."""

    def __init__(self, run_id: str | None = None):
        self.run_id = run_id or new_run_id()
        self.problem = ""

    def attach(self, inv) -> None:
        pass

    def step_done(self, host: str, record: Any, result: Any = None) -> None:
        pass

    def host_done(self, result: Any) -> None:
        pass

    def annotate(self, **fields: Any) -> None:
        pass

    def finish(self, status: str, exit_code: int | None, message: str = "") -> None:
        pass
