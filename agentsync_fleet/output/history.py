"""How the run history looks: the run list, one run in full, the stats, and what --resume picked."""

from __future__ import annotations

import textwrap
import time
from typing import Any

from rich.markup import escape
from rich.table import Table

from . import console, human_bytes, once_per_run

STATUS_STYLE = {"ok": "green", "failed": "red", "error": "red", "refused": "yellow", "interrupted": "magenta",
                "running": "cyan", "unreachable": "red", "conflict": "red", "guarded": "yellow",
                "skipped": "yellow", "not run": "dim"}


def when(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) if epoch else "—"


def seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}s"


def styled(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{escape(status)}[/]"


NARROW = 120  # below this many columns, wide tables stack their free text (messages, errors) under the table


def _flag(name: str) -> str:
    """A recorded argument's name as the user typed it (`from_` is `--from`)."""
    return "--" + name.rstrip("_").replace("_", "-")


def _args(args: dict[str, Any]) -> str:
    shown = [_flag(k) if v is True else f"{_flag(k)} {v}"
             for k, v in sorted((args or {}).items()) if v not in (None, False, "", 0) and k != "inventory"]
    return " ".join(shown)


def _stacked(out, notes: list[tuple[str, str]]) -> None:
    """Free text under a narrow table, one note per line (never squeezed into a zero-width column)."""
    for who, text in notes:
        lines = textwrap.wrap(f"{who}: {text}", max(out.width - 2, 40), subsequent_indent="    ",
                              break_long_words=False, break_on_hyphens=False)
        for line in lines:
            out.print("  " + escape(line), soft_wrap=True)


def render_runs(rows: list[dict[str, Any]], journal_path: str) -> None:
    out = console()
    if not rows:
        out.print(f"no runs recorded yet in {escape(journal_path)}")
        return
    table = Table(title=f"history ({escape(journal_path)})", title_justify="left")
    # The run id is its start time (local, to the second). Who and arguments only where they fit.
    wide = out.width >= 110
    columns = ("run (started)", "task", "time", "status", "hosts") + (("who", "args") if wide else ())
    for column in columns:
        table.add_column(column, no_wrap=column not in ("hosts", "args"), min_width=12 if column == "hosts" else None)
    for r in rows:
        hosts = ("\n" if not wide else " ").join(f"{escape(h)}:{styled(s)}" for h, s in r["hosts"].items())
        cells = [escape(r["id"]), escape(r["task"]), seconds(r["duration_s"]), styled(r["status"]), hosts or "—"]
        table.add_row(*cells, *((escape(r["who"]), escape(_args(r["args"]))) if wide else ()))
    out.print(table)
    if not wide:  # said, not silently dropped
        out.print("  [dim]who, arguments: agentsync history.show RUN (or --json, or 110+ columns)[/]")


def render_run(run: dict[str, Any]) -> None:
    out = console()
    out.print(f"[bold]{escape(run['task'])}[/] run [bold]{escape(run['id'])}[/] — {styled(run['status'])}"
              + (f" (exit {run['exit_code']})" if run.get("exit_code") is not None else ""))
    out.print(f"  by {escape(run['who'])}, pid {run['pid']} on {escape(run['controller'])}")
    out.print(f"  from {when(run['started'])} to {when(run.get('ended'))} ({seconds(run.get('duration_s'))})")
    out.print(f"  inventory {escape(run['inventory'])} (sha256 {run['inventory_sha256'][:12]})")
    if _args(run["args"]):
        out.print(f"  arguments: {escape(_args(run['args']))}")
    if run.get("message"):
        out.print(f"  [bold]message:[/] {escape(run['message'])}", soft_wrap=True)
    _host_table(out, run["hosts"], run.get("host_status") or {})
    _step_table(out, run["steps"])


def _host_table(out, hosts: list[dict[str, Any]], statuses: dict[str, str]) -> None:
    """One row per host: its final row (status as the history reads it), then the hosts the run included but
    has no final row of (`not run`, or the status of their last step)."""
    unfinished = [{"host": name, "status": status, "head_before": "", "head_after": "", "pulled": "—",
                   "pushed": "—", "duration_s": None, "message": "", "warnings": []}
                  for name, status in statuses.items() if name not in {h["host"] for h in hosts}]
    hosts = [{**h, "status": statuses.get(h["host"], h["status"])} for h in hosts] + unfinished
    if not hosts:
        return
    narrow = out.width < NARROW
    table = Table(title="hosts", title_justify="left")
    columns = ("host", "status", "HEAD before→after", "pulled", "pushed", "time") + (() if narrow else ("message",))
    for column in columns:
        table.add_column(column, no_wrap=column != "message")
    notes = []
    for h in hosts:
        message = h["message"].strip()
        cells = [escape(h["host"]), styled(h["status"]),
                 f"{(h['head_before'] or '—')[:8]}→{(h['head_after'] or '—')[:8]}", str(h["pulled"]),
                 str(h["pushed"]), seconds(h["duration_s"])]
        table.add_row(*cells, *(() if narrow else (escape(message),)))
        notes += [(h["host"], line) for line in message.splitlines()] if narrow else []
    out.print(table)
    warnings = once_per_run((h["host"], w) for h in hosts for w in h.get("warnings") or [])
    _stacked(out, notes + [(", ".join(names), f"! {warning}") for names, warning in warnings])


def _step_table(out, steps: list[dict[str, Any]]) -> None:
    if not steps:
        out.print("  no steps recorded")
        return
    narrow = out.width < NARROW
    table = Table(title="steps (in the order they finished)", title_justify="left")
    columns = ("host", "stage", "action", "status", "time", "exit") + (
        ("HEAD after",) if narrow else ("HEAD before→after", "moved", "error"))
    for column in columns:
        table.add_column(column, no_wrap=column not in ("error", "action"), min_width=12 if column == "action" else None)
    notes = []
    for s in steps:
        heads = s["head_before"][:8] + (f"→{s['head_after'][:8]}" if s["head_after"] else "")
        moved = ", ".join(x for x in (human_bytes(s["bytes"]) if s["bytes"] is not None else "",
                                      f"{s['files']} files" if s["files"] is not None else "") if x)
        error = (s["error"] or "").strip()
        cells = [escape(s["host"]), escape(s["stage"]), escape(s["action"]), styled(s["status"]),
                 seconds(s["duration_s"]), "" if s["exit_code"] is None else str(s["exit_code"])]
        if narrow:
            table.add_row(*cells, (s["head_after"] or s["head_before"])[:8])
            notes += [(f"{s['host']} {s['stage']}", text) for text in (f"moved {moved}" if moved else "", error) if text]
        else:
            table.add_row(*cells, heads, moved, escape(error))
    out.print(table)
    _stacked(out, notes)
    commands = sum(len(s["commands"] or []) for s in steps)
    out.print(f"  [dim]{commands} command(s) recorded; `agentsync history.show {steps[0]['run_id']} --json` "
              "lists each with its exit code and output tail[/]")


def render_stats(data: dict[str, Any], journal_path: str) -> None:
    out = console()
    rate = data["success_rate"]
    out.print(f"[bold]{data['runs']}[/] runs in {escape(journal_path)}: {data['ok']} ok of {data['finished']} "
              f"finished ({'—' if rate is None else f'{rate:.0%}'} success)")
    if data["by_status"]:
        out.print("  " + ", ".join(f"{styled(k)} {v}" for k, v in data["by_status"].items()))
    tasks = Table(title="per task", title_justify="left")
    for column in ("task", "runs", "ok", "success", "median time"):
        tasks.add_column(column)
    for task, t in data["tasks"].items():
        rate = "—" if t["success_rate"] is None else f"{t['success_rate']:.0%}"
        tasks.add_row(escape(task), str(t["runs"]), str(t["ok"]), rate, seconds(t["median_duration_s"]))
    out.print(tasks)
    steps = Table(title="median step time per host and step", title_justify="left")
    for column in ("host", "stage", "step", "runs", "ok", "median"):
        steps.add_column(column, no_wrap=column != "step")
    for s in data["steps"]:
        steps.add_row(escape(s["host"]), escape(s["stage"]), escape(s.get("action", "")), str(s["steps"]),
                      str(s["ok"]), seconds(s["median_duration_s"]))
    out.print(steps)
    last = Table(title="last success per host", title_justify="left")
    for column in ("host", "when", "task", "run"):
        last.add_column(column)
    for host, row in data["last_success"].items():
        last.add_row(escape(host), when(row["at"]), escape(row["task"]), escape(row["run_id"]))
    out.print(last)


def render_resume(plan, to_stderr: bool = False) -> None:
    out = console(stderr=to_stderr)
    if not plan.rerun:
        out.print(f"nothing to resume: every host of sync-all {escape(plan.run_id)} ended ok "
                  f"({escape(', '.join(plan.done)) or 'no hosts selected'})")
        return
    out.print(f"resuming sync-all {escape(plan.run_id)}: running again "
              + "; ".join(f"[bold]{escape(h)}[/] ({escape(why)})" for h, why in plan.rerun.items()), soft_wrap=True)
    if plan.done:
        out.print(f"  left alone (ended ok): {escape(', '.join(plan.done))}")


def render_export(path: str, count: int) -> None:
    console(stderr=True).print(f"exported {count} run(s) to {escape(path)}")
