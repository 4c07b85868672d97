"""How sync-all looks: the plan, a live line per host while it runs, and the summary table."""

from __future__ import annotations

import sys
import textwrap
import threading
import time

from rich.live import Live
from rich.markup import escape
from rich.table import Table

from ..records import SyncReport
from ..steps.git import ENV as GIT_ENV
from . import console, human_bytes, once_per_run

STATUS_STYLE = {"ok": "green", "unreachable": "red", "conflict": "red", "guarded": "yellow", "failed": "red",
                "skipped": "yellow"}


def render_plan(report: SyncReport) -> None:
    out = console()
    out.print(f"[bold]Plan[/] for {escape(report.inventory)} (dry run: nothing will be changed)")
    out.print(f"[dim]every git command runs with {escape(GIT_ENV)} so it can never wait for a password[/]",
              soft_wrap=True)
    skipped = [h for h in report.hosts if h.status != "ok"]
    out.print("[bold]stage 1 · preflight[/] (all hosts in parallel): probes done, repo state read, no fetch")
    for h in skipped:
        out.print(f"  [yellow]• {escape(h.host)}[/] will be left alone: {h.status} — {escape(h.message)}")
    stage_no = 1
    current = None
    for step in report.plan:
        if step.stage != current:
            current, stage_no = step.stage, stage_no + 1
            how = "one host at a time, in order" if step.stage in ("publish", "relay-in") else "hosts in parallel"
            out.print(f"[bold]stage {stage_no} · {escape(step.stage)}[/] ({how})")
        note = f" [dim]— {escape(step.note)}[/]" if step.note else ""
        out.print(f"  [cyan]{escape(step.host)}[/]: {escape(step.action)}{note}")
        for command in step.commands:
            out.print(f"      [dim]$[/] {escape(command.replace(GIT_ENV + ' ', ''))}", soft_wrap=True)
    if not report.plan:
        out.print("  nothing to do: every reachable host is already in step")
    render_incoming(report)


def render_incoming(report: SyncReport) -> None:
    """Per host: what it would receive (commits, diffstat) and the predicted outcome, as one table."""
    plans = [h for h in report.hosts if h.plan]
    if not plans:
        return
    out = console()
    table = Table(title="what each host would receive (decided as the run decides, on the last fetched origin)",
                  title_justify="left")
    for column in ("host", "move", "predicted", "incoming commits", "stash"):
        table.add_column(column, overflow="fold")
    for h in plans:
        plan = h.plan or {}
        commits = plan.get("incoming", [])
        shown = "\n".join(f"{c['id']} {c['subject']} ({c['author']})" for c in commits[:10])
        if len(commits) > 10:
            shown += f"\n… {len(commits) - 10} more"
        style = "green" if plan["outcome"] == "ok" else STATUS_STYLE.get(plan["outcome"], "yellow")
        table.add_row(f"[bold]{escape(h.host)}[/]", escape(plan["action"]), f"[{style}]{escape(plan['predicted'])}[/]",
                      escape(shown or "—"), escape(", ".join(plan.get("stash_paths", [])) or ""))
    out.print(table)
    for h in plans:
        diffstat = (h.plan or {}).get("diffstat", "")
        if diffstat:
            out.print(f"[cyan]{escape(h.host)}[/] diffstat:")
            out.print(escape(diffstat), soft_wrap=True)


class LiveView:
    """One line per host with its current step; a plain log when stdout is not a terminal."""

    def __init__(self, hosts: list[str], enabled: bool = True):
        self.hosts = hosts
        self.state = {h: ("waiting", "") for h in hosts}
        self.started = {h: time.monotonic() for h in hosts}
        self.enabled = enabled
        self.tty = sys.stdout.isatty()
        self.lock = threading.Lock()
        self.live: Live | None = None

    def __enter__(self) -> LiveView:
        if self.enabled and self.tty:
            self.live = Live(self._table(), console=console(), refresh_per_second=8, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:  # may be called early (an interrupt), then again by `with`
            live, self.live = self.live, None
            live.__exit__(*exc)

    def update(self, host: str, stage: str, text: str) -> None:
        if not self.enabled:
            return
        with self.lock:
            if self.state.get(host) == (stage, text):
                return  # progress reports repeat themselves; say each thing once
            self.state[host] = (stage, text)
            if self.live is not None:
                self.live.update(self._table())
            else:
                console().print(f"[dim]{time.strftime('%H:%M:%S')}[/] [cyan]{escape(host):<10}[/] "
                                f"{escape(stage):<10} {escape(text)}", soft_wrap=True)

    def _table(self) -> Table:
        table = Table(box=None, show_header=False, pad_edge=False)
        for host in self.hosts:
            stage, text = self.state[host]
            table.add_row(f"[cyan]{escape(host)}[/]", f"[bold]{escape(stage)}[/]", escape(text),
                          f"[dim]{time.monotonic() - self.started[host]:.1f}s[/]")
        return table


def render_interrupted(results: list) -> None:
    """On stderr, after an interrupt: each host that did not end ok, with its message (a kept stash is named in
    it, with the command that restores it)."""
    out = console(stderr=True)
    for h in results:
        if h.status != "ok":
            out.print(f"[red]✗[/] [bold]{escape(h.host)}[/] {h.status}: {escape(h.message)}", soft_wrap=True)
    out.print("interrupted: every move already under way was finished or put back before stopping")


NEXT_STEP = {
    "conflict": "resolve it on that host by hand (its files are exactly as they were), then run sync-all again",
    "guarded": "stop the process yourself when it is safe, or rerun with --allow-running",
}


def next_step(h, report: SyncReport) -> str:
    """What to do about a host that did not end ok: a hint that fits why (a skip has many reasons), or ""."""
    if h.status != "skipped":
        return NEXT_STEP.get(h.status, "")
    if "--strict" in h.message:
        down = [x.host for x in report.hosts if x.status == "unreachable"] or ["the unreachable host"]
        return (f"bring {', '.join(down)} back (agentsync health --hosts {','.join(down)} says why), or run "
                "sync-all without --strict")
    if "in progress" in h.message:
        return "finish or abort what is in progress there, then run sync-all again"
    if "checked out on" in h.message:
        return "check the inventory's branch out there again (or change the inventory), then run sync-all again"
    if "interrupted" in h.message:
        return "run sync-all --resume"
    return ""


def _notes(h) -> str:
    notes = []
    if h.unpushed:
        notes.append(f"{h.unpushed} local commit(s) kept (not pushed)")
    for wt in h.worktrees:
        merged = f" +{wt['merged']}" if wt.get("merged") else ""
        notes.append(f"worktree {wt['branch']}: {wt['status']}{merged}")
    for step in h.steps:
        if step.stage.startswith("artifacts") and step.status == "ok":
            notes.append(f"{step.action}: {step.detail}, {step.duration_s:.1f}s")
    notes += [f"{s.stage}: {s.detail}" for s in h.steps if "transfers" in s.data and s.detail]
    return "\n".join(notes + _relay_notes(h))


def _relay_notes(h) -> list[str]:
    """One line per relay step: what came in as patches (and how), what went out as a bundle."""
    notes = []
    for s in h.steps:
        relay, bundle = s.data.get("relay"), s.data.get("bundle")
        if relay and relay.get("applied"):
            how = "git am -3" if relay["method"] == "am" else "git apply --3way"
            where = f"to {relay['target']}" if relay["source"] == h.host else f"from {relay['source']}"
            notes.append(f"relayed {relay['applied']} commit(s) {where} by {how} (backup {relay['backup_branch']})")
        if bundle and bundle.get("method") == "bundle":
            notes.append(f"received {bundle['tip'][:8]} as a git bundle ({human_bytes(bundle['bytes'])})")
    return notes


def _say(out, mark: str, text: str, lead: int = 2, style: str = "") -> None:
    """`mark` then `text`, wrapped to the console's width between words (never inside a word, a path or a
    hash); continuation lines indented under the text. Each line of `text` wraps on its own."""
    first = " " * lead + ("X " if mark else "")
    rest = " " * (lead + (4 if mark else 2))
    lines: list[str] = []
    for number, paragraph in enumerate(text.splitlines() or [""]):
        lines += textwrap.wrap(paragraph, max(out.width, 40), initial_indent=first if number == 0 else rest,
                               subsequent_indent=rest, break_long_words=False, break_on_hyphens=False) or [rest]
    for index, line in enumerate(lines):
        shown = escape(line)
        if index == 0 and mark:
            shown = " " * lead + mark + escape(line[lead + 1:])
        out.print(f"[{style}]{shown}[/]" if style else shown, soft_wrap=True)


def render_summary(report: SyncReport, task: str = "sync-all") -> None:
    out = console()
    table = Table(title=f"{task} {report.run_id}", title_justify="left")
    for column in ("host", "status", "HEAD before→after", "pulled", "pushed", "stash", "time"):
        table.add_column(column, no_wrap=True)
    for h in report.hosts:
        style = STATUS_STYLE.get(h.status, "white")
        heads = f"{h.head_before[:8] or '—'}→{h.head_after[:8] or '—'}"
        table.add_row(f"[bold]{escape(h.host)}[/]", f"[{style}]{h.status}[/]", heads, str(h.pulled),
                      str(h.pushed), "yes" if h.stash_used else "", f"{h.duration_s:.1f}s")
    out.print(table)
    for h in report.hosts:
        for note in _notes(h).splitlines():
            _say(out, "[cyan]·[/]", f"{h.host}: {note}")
    for hosts, warning in once_per_run((h.host, w) for h in report.hosts for w in h.warnings):
        _say(out, "[yellow]![/]", f"{', '.join(hosts)}: {warning}")
    for h in report.hosts:
        if h.status == "ok":
            continue
        _say(out, "[red]✗[/]", f"{h.host} {h.status}: {h.message}")
        if h.files:
            _say(out, "", f"files: {', '.join(h.files)}", lead=6)
        hint = next_step(h, report)
        if hint:
            _say(out, "", f"next: {hint}", lead=6, style="dim")
    if report.aborted:
        _say(out, "", f"aborted: {report.aborted}", lead=0, style="bold red")
    ok = sum(h.status == "ok" for h in report.hosts)
    verdict = "[bold green]in step[/]" if report.ok else "[bold red]not all hosts in step[/]"
    origin = f", origin at {report.origin_head[:8]}" if report.origin_head else ""
    out.print(f"{verdict} — {ok}/{len(report.hosts)} hosts ok{origin}, {report.duration_s:.1f}s")
