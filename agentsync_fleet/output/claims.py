"""How claims look: the outcome of a claim/checkin/release, and the table of current claims."""

from __future__ import annotations

import time

from rich.markup import escape
from rich.table import Table

from . import console, human_duration, warn


def render_change(data: dict) -> None:
    if data.get("warning"):
        warn(data["warning"])
    console().print(f"[green]✓[/] {escape(data['message'])} [dim](via {escape(data['host'])})[/]")


def render_claims(rows: list[dict], host: str) -> None:
    out = console()
    if not rows:
        out.print(f"no claims (read from origin via {escape(host)})")
        return
    table = Table(title=f"claims (origin, via {escape(host)})", title_justify="left")
    for column in ("area", "who", "since", "last check-in", "note"):
        table.add_column(column, no_wrap=column != "note")
    for row in rows:
        idle = human_duration(row["idle_s"]) + " ago"
        checkin = f"[yellow]{idle} (stale)[/]" if row["stale"] else idle
        since = time.strftime("%Y-%m-%d %H:%M", time.localtime(row["since"]))
        table.add_row(f"[bold]{escape(row['area'])}[/]", escape(row["who"]), since, checkin, escape(row["note"]))
    out.print(table)
