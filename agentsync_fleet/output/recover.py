"""How `recover` looks: per host what was healed, what could not be, and the agentsync stashes left."""

from __future__ import annotations

from rich.markup import escape

from . import console


def render_recover(rows: list[dict]) -> None:
    out = console()
    for row in rows:
        mark = "[green]✓[/]" if row["status"] == "ok" else "[red]✗[/]"
        did = "; ".join(row["actions"]) or "nothing left by a cut-off move"
        out.print(f"{mark} [bold]{escape(row['host'])}[/]: {escape(did)}", soft_wrap=True)
        if row["problem"]:
            out.print(f"    [red]{escape(row['problem'])}[/]", soft_wrap=True)
        for stash in row["stashes"]:
            out.print(f"    [yellow]agentsync stash kept[/] {escape(stash['ref'])}: {escape(stash['message'])}",
                      soft_wrap=True)
            for line in stash["files"]:
                out.print(f"        {escape(line)}", soft_wrap=True)
