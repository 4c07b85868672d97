"""How transfers look: progress bars while rsync runs, then a summary per transfer.

Progress bars go to stderr and only when it is a terminal, so `--json`
output and logs stay clean (and rich's progress module is not even imported
otherwise).
"""

from __future__ import annotations

import sys
import threading

from rich.markup import escape

from ..transfer.model import TransferEvent, TransferReport, TransferResult, totals
from . import console, human_bytes

MARK = {"new": "+", "update": "~", "delete": "-", "mkdir": "+", "link": "+", "attrs": "."}
MAX_CHANGES = 200


class TransferDisplay:
    """One bar per transfer: percent, bytes moved, files checked; nothing when stderr is not a terminal."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled and sys.stderr.isatty()
        self.progress = None
        self.tasks: dict[str, int] = {}
        self.lock = threading.Lock()

    def __enter__(self) -> TransferDisplay:
        if self.enabled:
            from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("[cyan]{task.description}"), BarColumn(), TaskProgressColumn(),
                                     TextColumn("{task.fields[bytes]}"), TextColumn("{task.fields[files]}"),
                                     TimeElapsedColumn(), console=console(stderr=True), transient=False)
            self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def event(self, event: TransferEvent) -> None:
        if self.progress is None:
            return
        with self.lock:
            if event.kind == "start":
                self.tasks[event.key] = self.progress.add_task(escape(event.key), total=100, bytes="", files="")
                return
            task = self.tasks.get(event.key)
            if task is None:
                return
            if event.kind == "progress":
                p = event.progress
                files = f"{p.total - p.remaining}/{p.total} files" if p.total is not None else ""
                self.progress.update(task, completed=p.percent, bytes=human_bytes(p.bytes), files=files)
            elif event.kind == "end":
                result = event.result
                mark = "[green]✓[/]" if result.ok else "[red]✗[/]"
                self.progress.update(task, completed=100 if result.ok else None,
                                     description=f"{mark} {escape(event.key)}")


def render_report(report: TransferReport) -> None:
    out = console()
    title = f"[bold]{report.task}[/] {report.run_id}"
    out.print(title + (" [yellow](dry run: nothing was moved)[/]" if report.dry_run else ""))
    for transfer in report.transfers:
        _render_one(out, transfer)
    _secrets_held_back(out, report.transfers)
    for problem in report.problems:
        out.print(f"[red]✗[/] {escape(problem)}", soft_wrap=True)
    t = totals(report.transfers)
    verb = "would move" if report.dry_run else "moved"
    verdict = "[bold green]ok[/]" if report.ok else "[bold red]not all transfers finished[/]"
    out.print(f"{verdict} — {t['count']} transfer(s): {t['files']} file(s), {human_bytes(t['bytes'])} {verb}, "
              f"{t['backed_up']} backed up, {t['held_back']} held back, {report.duration_s:.1f}s")


def _render_one(out, t: TransferResult) -> None:
    mark = "[green]✓[/]" if t.ok else "[red]✗[/]"
    via = {"relay": " [dim](relayed through the laptop's cache)[/]", "direct": " [dim](direct)[/]"}.get(t.mode, "")
    out.print(f"{mark} [bold]{escape(t.key)}[/] {escape(t.source)} → {escape(t.dest)}{via}", soft_wrap=True)
    verb = "would move" if t.dry_run else "moved"
    line = f"    {t.files} file(s), {human_bytes(t.bytes)} {verb}"
    if not t.ok:  # rsync prints its totals only when it finishes
        started = sum(c["action"] in ("new", "update") for c in t.changes)
        line = (f"    stopped before the end ({started} file(s) started; --json lists them)" if started else
                "    stopped before any file moved")
    if t.deleted:
        line += f", {t.deleted} deleted"
    if t.excluded:
        line += f", {t.excluded} excluded by the entry's patterns"
    out.print(line + f", {t.duration_s:.1f}s")
    if not t.ok:
        out.print(f"    [red]{t.status}:[/] {escape(t.error)}", soft_wrap=True)
        if t.hint:
            out.print(f"    [dim]hint: {escape(t.hint)}[/]", soft_wrap=True)
        for line_ in t.detail.splitlines():
            out.print(f"      [dim]{escape(line_)}[/]", soft_wrap=True)
    _held_back(out, t)
    if t.backed_up:
        out.print(f"    backed up {len(t.backed_up)} file(s) it replaced or deleted, into {escape(t.backup_dir)}",
                  soft_wrap=True)
        for item in t.backed_up:
            out.print(f"      {escape(item['path'])}  [dim]restore: {escape(item['restore'])}[/]", soft_wrap=True)
        out.print(f"      [dim]restore all: {escape(t.restore_all)}[/]", soft_wrap=True)
    if t.dry_run:
        _changes(out, t)
    for warning in t.warnings:
        out.print(f"    [yellow]![/] {escape(warning)}", soft_wrap=True)


def _secrets_held_back(out, transfers) -> None:
    """The secrets each transfer held back, once per run: the same files held back from several hosts (a
    `.env` beside the code pushed to three hosts) are one line naming the transfers."""
    by_names: dict[str, list[str]] = {}
    for t in transfers:
        secrets = [h for h in t.held_back if h["reason"] == "secret"]
        if secrets:
            by_names.setdefault(", ".join(f"{h['path']} ({h['pattern']})" for h in secrets), []).append(t.key)
    for names, keys in by_names.items():
        out.print(f"[yellow]held back[/] (secrets, never sent): {escape(names)} [dim]— {escape(', '.join(keys))}[/]",
                  soft_wrap=True)


def _held_back(out, t: TransferResult) -> None:
    guarded = [h for h in t.held_back if h["reason"] == "guard"]
    if guarded:
        first = guarded[0]
        why = (f"guarded: pid {first['pid']} {escape(first['command'])} runs" if first["pid"] is not None
               else f"guarded: cannot see processes: {escape(first['command'].removeprefix('unknown: '))}")
        out.print(f"    [yellow]held back[/] ({why}): "
                  f"{escape(', '.join(h['path'] for h in guarded))} — rerun with --allow-running to send them",
                  soft_wrap=True)


def _changes(out, t: TransferResult) -> None:
    changes = [c for c in t.changes if c["action"] != "attrs"]
    if not changes:
        out.print("    no changes")
        return
    for change in changes[:MAX_CHANGES]:
        leg = f" [dim]({escape(change['leg'])})[/]" if "leg" in change else ""
        into_cache = change.get("leg", "").endswith("laptop cache")
        saved = " [dim](backed up first)[/]" if change["action"] in ("update", "delete") and not into_cache else ""
        out.print(f"      {MARK.get(change['action'], '?')} {change['action']:<6} {escape(change['path'])}"
                  f"{saved}{leg}", soft_wrap=True)
    if len(changes) > MAX_CHANGES:
        out.print(f"      … and {len(changes) - MAX_CHANGES} more (all of them are in --json)")
