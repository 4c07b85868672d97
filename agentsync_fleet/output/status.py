"""`status` for people: a compact ahead/behind/uncommitted table."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from . import console


def render_status(rows: list[dict]) -> None:
    table = Table(title="Fleet status", title_justify="left")
    for column in ("host", "branch", "HEAD", "ahead", "behind", "uncommitted", "stashes"):
        table.add_column(column)
    for r in rows:
        if not r["reachable"]:
            table.add_row(escape(r["host"]), f"[red]unreachable: {escape(r['error'])}[/]", "", "", "", "", "")
            continue
        if r["error"]:
            table.add_row(escape(r["host"]), f"[red]{escape(r['error'])}[/]", "", "", "", "", "")
            continue
        table.add_row(escape(r["host"]), escape(r["branch"]), r["head"][:8],
                      _n(r["ahead"], "cyan"), _n(r["behind"], "red"), _n(r["uncommitted"], "yellow"),
                      str(r["stashes"] or ""))
    console().print(table)
    for r in rows:
        if r.get("leftover"):
            console().print(f"  [yellow]![/] [bold]{escape(r['host'])}[/]: an agentsync move was cut off there and left "
                            f"{escape(r['leftover'])}; the next sync-all, pull or push heals it, or `agentsync recover`",
                            soft_wrap=True)


def _n(value, color: str) -> str:
    if value is None:
        return "?"
    return f"[{color}]{value}[/]" if value else "0"
