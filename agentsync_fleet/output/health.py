"""How a health report looks to a person: one table row per host, then the reasons."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from ..records import HealthReport, HostHealth
from . import console, human_bytes, human_duration
from .gate import checks_cell, print_why


def _reach(h: HostHealth) -> str:
    if not h.reachable:
        return f"[red]✗ {escape(h.reason)}[/]"
    if h.latency_ms is None:
        return "[green]local[/]"
    return f"[green]✓[/] {h.latency_ms:.0f} ms"


def _repo(h: HostHealth) -> str:
    r = h.repo
    if r is None:
        return ""
    if not r.present:
        return f"[red]{escape(r.error)}[/]"
    text = f"{escape(r.branch)} {r.head[:8]}"
    if r.in_progress:
        text += f" [red]{escape(', '.join(r.in_progress))}![/]"
    return text


def _sync(h: HostHealth) -> str:
    r = h.repo
    if r is None or not r.present:
        return ""
    if r.ahead is None:
        return "[yellow]no upstream[/]"
    parts = []
    if r.ahead:
        parts.append(f"[cyan]↑{r.ahead}[/]")
    if r.behind:
        parts.append(f"[red]↓{r.behind}[/]")
    text = " ".join(parts) or "[green]up to date[/]"
    return text + ("" if r.fetched or not h.reachable else " [dim](not fetched)[/]")


def _local(h: HostHealth) -> str:
    r = h.repo
    if r is None or not r.present:
        return ""
    dirty = f"[yellow]{r.dirty} dirty[/]" if r.dirty else "clean"
    return dirty + (f", {r.stashes} stash" if r.stashes else "")


def _running(h: HostHealth) -> str:
    if h.guard is not None and h.guard.unknown and h.reachable:
        return "[red]unknown[/] (cannot see processes)"
    lines = [f"[magenta]{escape(p.pattern)}[/] pid {p.pid}"
             + (f" up {human_duration(p.uptime_s)}" if p.uptime_s is not None else "") for p in h.processes]
    for job in h.jobs:  # the jobs feature's rows: running jobs, and jobs that died (also among the warnings)
        gpu = f", {job.gpu_mib:.0f} MiB GPU" if job.gpu_mib else ""
        style = "cyan" if job.running else "red"
        lines.append(f"[{style}]job {escape(job.name)}[/] {job.id} {escape(job.label)} "
                     f"{human_duration(job.runtime_s)}{gpu}")
    return "\n".join(lines)


def _machine(h: HostHealth) -> str:
    s = h.system
    parts = []
    if s and s.disk_free_bytes is not None:
        parts.append(f"{human_bytes(s.disk_free_bytes)} free")
    if s and s.load:
        parts.append(f"load {s.load[0]:.2f}")
    if h.gpu:
        if h.gpu.status == "ok":
            parts += [f"{g.name.replace('NVIDIA ', '')} {g.utilization_pct or 0:.0f}% "
                      f"{(g.memory_used_mb or 0) / 1024:.1f}/{(g.memory_total_mb or 0) / 1024:.0f} GB "
                      f"{g.temperature_c or 0:.0f}°C" for g in h.gpu.gpus]
        else:
            parts.append(f"gpu {h.gpu.status}")
    if h.zerotier:
        color = "green" if h.zerotier.status == "ok" else "yellow"
        parts.append(f"[{color}]zt {h.zerotier.status}[/]")
    return "\n".join(escape(p) if "[" not in p else p for p in parts)


NARROW = 110  # below this many columns each host is a block of labelled lines instead of a table row


def render_health(report: HealthReport) -> None:
    out = console()
    if out.width < NARROW:
        _host_blocks(out, report)
    else:
        _host_table(out, report)
    _reasons_and_verdict(out, report)


def _gate(h: HostHealth) -> str:
    return "[bold green]PASS[/]" if h.passed else "[bold red]FAIL[/]"


def _host_blocks(out, report: HealthReport) -> None:
    """The narrow layout: no cell is ever narrower than its longest word, so nothing breaks mid-word or mid-hash."""
    out.print(f"Fleet health — {escape(report.inventory)}", soft_wrap=True)
    for h in report.hosts:
        target = f" [dim]({escape(h.target)})[/]" if h.target != h.host else ""
        out.print(f"[bold]{escape(h.host)}[/]{target}  {_gate(h)}")
        fields = [("reach", _reach(h)), ("repo", _repo(h)), ("origin", _sync(h)), ("local", _local(h)),
                  ("running", _running(h).replace("\n", "; ")), ("machine", _machine(h).replace("\n", ", "))]
        for label, value in fields:
            if value:
                out.print(f"  {label:<8}{value}")


def _host_table(out, report: HealthReport) -> None:
    table = Table(title=f"Fleet health — {escape(report.inventory)}", title_justify="left", show_lines=True)
    columns = ["host", "reach", "repo", "origin", "local", "running", "machine", "gate"]
    with_checks = any(h.checks for h in report.hosts)
    if with_checks:
        columns.insert(-1, "checks")
    for column in columns:
        table.add_column(column, overflow="fold")
    for h in report.hosts:
        gate = _gate(h)
        name = f"[bold]{escape(h.host)}[/]" + (f"\n[dim]{escape(h.target)}[/]" if h.target != h.host else "")
        cells = [name, _reach(h), _repo(h), _sync(h), _local(h), _running(h), _machine(h), gate]
        if with_checks:
            cells.insert(-1, checks_cell(h))
        table.add_row(*cells)
    out.print(table)


def _reasons_and_verdict(out, report: HealthReport) -> None:
    for h in report.hosts:
        for failure in h.failures:
            out.print(f"  [red]✗[/] [bold]{escape(h.host)}[/]: {escape(failure)}")
        if h.hint and not h.passed:
            out.print(f"      [dim]hint: {escape(h.hint)}[/]")
        print_why(out, h)
        for warning in h.warnings:
            out.print(f"  [yellow]![/] [bold]{escape(h.host)}[/]: {escape(warning)}")
    passed = sum(h.passed for h in report.hosts)
    verdict = "[bold green]deploy gate: PASS[/]" if report.passed else "[bold red]deploy gate: FAIL[/]"
    fetched = "" if report.fetched else " (no fetch)"
    out.print(f"{verdict} — {passed}/{len(report.hosts)} hosts ready, {report.duration_s:.2f}s{fetched}")
