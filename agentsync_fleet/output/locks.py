"""How `unlock` reports what it found and removed, place by place."""

from __future__ import annotations

from rich.markup import escape

from . import console

MARK = {"removed": "[green]removed[/]", "none": "[dim]no lock[/]", "kept": "[yellow]kept[/]",
        "unreachable": "[red]unreachable[/]", "error": "[red]error[/]"}


def render_unlock(rows, force: bool) -> None:
    out = console()
    for row in rows:
        line = f"{escape(row.where):<12} {MARK.get(row.status, escape(row.status))}"
        if row.holder:
            line += f": {escape(row.holder)}"
        if row.reason:
            line += f" [dim]({escape(row.reason)})[/]"
        out.print(line, soft_wrap=True)
    if any(r.status == "kept" for r in rows) and not force:
        out.print("[dim]a kept lock may belong to a run still in progress; if you are sure it is not, "
                  "run `agentsync unlock --force`[/]")
