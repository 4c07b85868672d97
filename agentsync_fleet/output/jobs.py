"""How jobs look: the fleet's job table, a started job, a job's end, a cancel's outcome."""

from __future__ import annotations

import time

from rich.markup import escape
from rich.table import Table

from . import console, human_duration, warn

STATE_STYLE = {"running": "cyan", "exited": "green", "killed": "yellow", "lost": "red"}


def _state(job) -> str:
    style = STATE_STYLE.get(job.state, "")
    if job.state == "exited" and job.exit_code:
        style = "red"
    return f"[{style}]{escape(job.label)}[/]" if style else escape(job.label)


def _when(epoch: float | None) -> str:
    return time.strftime("%m-%d %H:%M:%S", time.localtime(epoch)) if epoch else "?"


def render_jobs(jobs: list, problems: dict[str, str]) -> None:
    out = console()
    for host, message in problems.items():
        warn(f"{host}: {message}")
    if not jobs:
        out.print("no jobs" + (" (on the hosts reached)" if problems else ""))
        return
    gpu = any(j.gpu_mib is not None for j in jobs)
    table = Table(title="jobs", title_justify="left")
    for column in ("id", "host", "name", "state", "started", "run time", *(("GPU",) if gpu else ()), "last line"):
        table.add_column(column, no_wrap=column != "last line", overflow="fold")
    for job in jobs:
        gpu_cell = (f"{job.gpu_mib:.0f} MiB" if job.gpu_mib is not None else "",) if gpu else ()
        table.add_row(job.id, escape(job.host), escape(job.name), _state(job), _when(job.started),
                      human_duration(job.runtime_s), *gpu_cell, escape(job.last_line[:120]))
    out.print(table)
    running = sum(1 for j in jobs if j.running)
    out.print(f"{running} running, {len(jobs) - running} ended" + (" — `agentsync jobs --all` shows older ones"
                                                                   if jobs else ""))


def render_started(job, waiting: bool = False) -> None:
    out = console(stderr=waiting)
    where = f" in tmux session '{escape(job.tmux)}'" if job.tmux else ""
    out.print(f"[green]✓[/] started job [bold]{job.id}[/] ({escape(job.name)}) on {escape(job.host)}{where}, "
              f"pid {job.pid}")
    if not waiting:
        out.print(f"  follow: agentsync logs {job.id} --follow    wait: agentsync wait {job.id}    "
                  f"stop: agentsync cancel {job.id}")
        if job.tmux:
            out.print(f"  attach: ssh {escape(job.host)} -t tmux attach -t {escape(job.tmux)}")


def render_waiting(job) -> None:
    console(stderr=True).print(f"waiting for job {job.id} ({escape(job.name)}) on {escape(job.host)}: "
                               f"{escape(job.label)}")


def render_ended(job) -> None:
    console().print(f"job {job.id} ({escape(job.name)}) on {escape(job.host)}: {_state(job)} after "
                    f"{human_duration(job.runtime_s)}" + (f" — {escape(job.last_line)}" if job.last_line else ""))


def render_cancel(job, outcome: str, sent: str) -> None:
    text = {
        "done": f"sent {sent or 'SIGTERM'} to job {job.id}'s process group",
        "ended": f"job {job.id} had already ended",
        "gone": f"job {job.id}'s process is gone (a different process may have its pid now; nothing was signalled)",
        "nopid": f"job {job.id} has not recorded its process; nothing was signalled",
        "nogroup": f"job {job.id} is not in a process group of its own; nothing was signalled",
        "missing": f"job {job.id} has no record on {job.host}",
    }.get(outcome, f"cancel of job {job.id} did not complete")
    console().print(f"{'[green]✓[/]' if outcome in ('done', 'ended') else '[yellow]![/]'} {escape(text)}; "
                    f"now {_state(job)}")
