"""How `artifacts` looks: a spinner per entry while it runs, then a table, what moved, and what failed."""

from __future__ import annotations

import sys
import threading
import time

from rich.live import Live
from rich.markup import escape
from rich.spinner import Spinner
from rich.table import Table

from . import console, human_bytes, human_duration

SHOWN_PATHS = 20  # per entry, in a dry run's "would move" list
LOG_EVERY_S = 10.0  # without a terminal: a progress line per entry at most this often


def _arrow(direction: str) -> str:
    return "↑" if direction == "up" else "↓"


class ProgressView:
    """One line per entry: a spinner, files the CLI has reported so far, and its own byte progress.

    The figures are the CLI's own statements as they stream in over SSH: a
    file counts once the CLI says `upload:`/`download:` for it.
    """

    def __init__(self, hosts: list, direction: str | None, dry_run: bool):
        self.rows: dict[tuple[str, int], dict] = {}
        for phase in ("up", "down"):
            for host in hosts:
                for index, entry in enumerate(host.s3):
                    if entry.direction == phase and direction in (None, phase):
                        self.rows[(host.name, index)] = {"host": host.name, "entry": entry, "files": 0,
                                                         "deleted": 0, "progress": "", "state": "waiting",
                                                         "started": None, "logged": 0.0,
                                                         "spinner": Spinner("dots", style="cyan")}
        self.verb = "would move" if dry_run else "moved"
        self.tty = sys.stdout.isatty()
        self.lock = threading.Lock()
        self.live: Live | None = None

    def __enter__(self) -> ProgressView:
        if self.tty:
            self.live = Live(get_renderable=self._table, console=console(), refresh_per_second=8, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def progress(self, host: str, index: int, files: int, deleted: int, text: str) -> None:
        with self.lock:
            row = self.rows.get((host, index))
            if row is None:
                return
            row.update(files=files, deleted=deleted, progress=text, state="running")
            row["started"] = row["started"] or time.monotonic()
            if not self.tty and time.monotonic() - row["logged"] >= LOG_EVERY_S:
                row["logged"] = time.monotonic()
                started = not files and not deleted and not text
                self._log(row, "started" if started else f"{files} file(s) so far" + (f" · {text}" if text else ""))

    def done(self, result) -> None:
        with self.lock:
            row = self.rows.get((result.host, result.index))
            if row is None:
                return
            row.update(state=result.status, files=result.files, deleted=result.deleted, progress="")
            if not self.tty:
                self._log(row, f"{result.status}: {result.files} file(s) {self.verb}"
                               + (f" — {result.message}" if result.message else ""))

    def _log(self, row: dict, text: str) -> None:
        entry = row["entry"]
        console().print(f"[dim]{time.strftime('%H:%M:%S')}[/] [cyan]{escape(row['host'])}[/] "
                        f"{_arrow(entry.direction)} {escape(entry.path)}: {escape(text)}", soft_wrap=True)

    def _table(self) -> Table:
        table = Table(box=None, show_header=False, pad_edge=False)
        with self.lock:
            for row in self.rows.values():
                entry, state = row["entry"], row["state"]
                mark = {"ok": "[green]✓[/]", "failed": "[red]✗[/]", "unreachable": "[red]✗[/]",
                        "waiting": "[dim]·[/]"}.get(state) or row["spinner"]
                figures = f"{row['files']} file(s)" + (f", {row['deleted']} deleted" if row["deleted"] else "")
                if row["progress"]:
                    figures += f" · {row['progress']}"
                elapsed = f"{time.monotonic() - row['started']:.0f}s" if row["started"] else ""
                table.add_row(mark, f"[cyan]{escape(row['host'])}[/]", _arrow(entry.direction),
                              escape(entry.path), f"[dim]{escape(entry.url)}[/]", escape(figures), elapsed)
        return table


def _figures(e) -> tuple[str, str]:
    files = str(e.files) + (f" (-{e.deleted})" if e.deleted else "")
    size = human_bytes(e.bytes) if e.bytes is not None else "?"
    return files, size


def render_report(report) -> None:
    out = console()
    if not report.entries:
        out.print("nothing to sync: no selected host has s3: entries" + (f" for `{report.direction}`"
                                                                         if report.direction else ""))
        return
    title = "artifacts (dry run: nothing moved)" if report.dry_run else "artifacts"
    table = Table(title=title, title_justify="left")
    for column in ("host", "", "path", "S3", "status", "files", "bytes", "time"):
        table.add_column(column, no_wrap=column != "S3")
    for e in report.entries:
        style = "green" if e.ok else "red"
        files, size = _figures(e)
        table.add_row(f"[bold]{escape(e.host)}[/]", _arrow(e.direction), escape(e.path), escape(e.url),
                      f"[{style}]{e.status}[/]", files, size, human_duration(e.duration_s) if e.duration_s >= 60
                      else f"{e.duration_s:.1f}s")
    out.print(table)
    for e in report.entries:
        _details(out, e, report.dry_run)
    _verdict(out, report)


def _details(out, e, dry_run: bool) -> None:
    if dry_run and e.ok and (e.paths or e.deleted_paths):
        out.print(f"  [cyan]·[/] [bold]{escape(e.host)}[/] {_arrow(e.direction)} {escape(e.path)}: would "
                  f"{'upload' if e.direction == 'up' else 'download'} {e.files} file(s)"
                  + (f", delete {e.deleted}" if e.deleted else ""), soft_wrap=True)
        for path in e.paths[:SHOWN_PATHS]:
            out.print(f"      {escape(path)}", soft_wrap=True)
        for path in e.deleted_paths[:SHOWN_PATHS]:
            out.print(f"      [red]delete[/] {escape(path)}", soft_wrap=True)
        if e.files > SHOWN_PATHS:
            out.print(f"      … and {e.files - SHOWN_PATHS} more (--json lists up to 200)")
    if e.held_back:
        out.print(f"  [yellow]held back[/] [bold]{escape(e.host)}[/] {_arrow(e.direction)} {escape(e.path)} "
                  f"(secrets, never uploaded): {escape(', '.join(e.held_back[:SHOWN_PATHS]))}"
                  + (f" … and {len(e.held_back) - SHOWN_PATHS} more" if len(e.held_back) > SHOWN_PATHS else ""),
                  soft_wrap=True)
    for warning in e.warnings:
        out.print(f"  [yellow]![/] [bold]{escape(e.host)}[/]: {escape(warning)}", soft_wrap=True)
    if e.ok:
        return
    out.print(f"  [red]✗[/] [bold]{escape(e.host)}[/] {_arrow(e.direction)} {escape(e.path)}: "
              f"{escape(e.message)}", soft_wrap=True)
    if e.aws_message:
        out.print(f"      AWS: {escape(e.aws_message)}", soft_wrap=True)
    if e.hint:
        out.print(f"      [dim]hint: {escape(e.hint)}[/]", soft_wrap=True)
    out.print(f"      [dim]command: {escape(e.command)}[/]", soft_wrap=True)


def _verdict(out, report) -> None:
    ok = sum(e.ok for e in report.entries)
    files = sum(e.files for e in report.entries if e.ok)
    sized = [e.bytes for e in report.entries if e.ok and e.bytes is not None]
    size = f", {human_bytes(sum(sized))}" if sized else ""
    verb = "would move" if report.dry_run else "moved"
    verdict = "[bold green]all entries ok[/]" if report.ok else "[bold red]some entries failed[/]"
    out.print(f"{verdict} — {ok}/{len(report.entries)} entries ok, {files} file(s){size} {verb}, "
              f"{report.duration_s:.1f}s")
