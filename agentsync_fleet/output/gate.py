"""How the deploy gate's own parts look: the `checks` cell, the "why" lines under the health table,
and sync-all's refusal when `--gate` fails."""

from __future__ import annotations

from rich.markup import escape

from ..records import HostHealth
from . import console

DIRTY_SHOWN = 5  # dirty files named under the table; the rest are counted


def checks_cell(h: HostHealth) -> str:
    """`3/3` when every check passed, else the failing checks' names (empty: no checks ran)."""
    if not h.checks:
        return ""
    failing = [c.name for c in h.checks if not c.passed]
    if not failing:
        return f"[green]{len(h.checks)}/{len(h.checks)}[/]"
    return "[red]" + escape("\n".join(failing)) + "[/]"


def why_lines(h: HostHealth) -> list[str]:
    """For a failing host: which files are dirty, which guard processes are down, what its GPU runs,
    and the output tail of a failed run check. The failures themselves are printed just above."""
    if h.passed:
        return []
    lines = []
    repo = h.repo
    if repo is not None and repo.present and repo.dirty_files:
        shown = [f for f in repo.dirty_files if f not in h.allowed_untracked][:DIRTY_SHOWN]
        more = repo.dirty - len(h.allowed_untracked) - len(shown)
        if shown:
            lines.append("dirty: " + ", ".join(shown) + (f" (+{more} more)" if more > 0 else ""))
    if h.allowed_untracked:
        lines.append(f"allowed untracked: {len(h.allowed_untracked)} file(s) ({', '.join(h.allowed_untracked[:3])}"
                     + (", …)" if len(h.allowed_untracked) > 3 else ")"))
    if h.not_running and f"{h.not_running[0]} is not running" not in h.failures:  # else it is a failure above
        lines.append("guard not running: " + ", ".join(h.not_running))
    for check in h.checks:
        if check.kind == "run" and not check.passed and check.output_tail:
            last = check.output_tail.splitlines()[-3:]
            lines.append(f"check {check.name} output (tail): " + " ⏎ ".join(line.strip() for line in last))
    if h.gpu is not None and h.gpu.processes:
        lines.append("gpu processes: " + ", ".join(
            f"{p.pid} {p.name}" + (f" ({p.used_memory_mb:.0f} MiB)" if p.used_memory_mb is not None else "")
            for p in h.gpu.processes))
    return lines


def print_why(out, h: HostHealth) -> None:
    for line in why_lines(h):
        out.print(f"      [dim]{escape(line)}[/]")


def render_gate_refusal(blockers: dict[str, list[str]]) -> None:
    """sync-all --gate: why nothing was done (under the health table)."""
    out = console()
    out.print(f"[bold red]sync-all refused by the deploy gate[/]: nothing was changed on any host "
              f"({len(blockers)} host(s) not ready)")
    for host, reasons in blockers.items():
        out.print(f"  [red]✗[/] [bold]{escape(host)}[/]: {escape('; '.join(reasons))}")
