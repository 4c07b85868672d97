"""`status`: per host, how far it is ahead of / behind origin and how many files are uncommitted.

Exit 1 when any host is not in step: unreachable, missing its checkout, ahead, behind, with
uncommitted files or a rebase/merge in progress (a CI gate can use it as it is).
"""

from __future__ import annotations

from . import FleetArgs
from .journaling import journal_health


def rows(report) -> list[dict]:
    out = []
    for h in report.hosts:
        repo = h.repo
        out.append({
            "host": h.host, "reachable": h.reachable, "error": h.error or _repo_problem(repo),
            "branch": repo.branch if repo else "", "head": repo.head if repo else "",
            "ahead": repo.ahead if repo else None, "behind": repo.behind if repo else None,
            "uncommitted": repo.dirty if repo else None, "stashes": repo.stashes if repo else None,
            "in_progress": list(repo.in_progress) if repo else [],
            "leftover": repo.leftover if repo else "",  # what a cut-off agentsync move left (`heal.py`)
        })
    return out


def _repo_problem(repo) -> str:
    if repo is None:
        return "repo state unknown"
    if not repo.present:
        return repo.error or "no git checkout at the repo path"
    return ""


def in_step(row: dict) -> bool:
    """Reachable, checkout present, neither ahead of nor behind origin, nothing uncommitted."""
    return (row["reachable"] and not row["error"] and row["ahead"] == 0 and row["behind"] == 0
            and not row["uncommitted"] and not row["in_progress"])


def run(args: FleetArgs, fetch: bool = True) -> int:
    from ..health import check_fleet
    from ..remote import Connector

    inv = args.load()
    connector = Connector(inv)
    try:
        report = check_fleet(inv, args.selected(inv), connector, fetch=fetch, workers=args.worker_limit(inv))
    finally:
        connector.close_all()
    journal_health(args.recorder, report)
    data = rows(report)
    if args.json:
        from ..output import emit_json

        emit_json({"inventory": str(inv.path), "ok": all(in_step(r) for r in data), "hosts": data})
    else:
        from ..output.status import render_status

        render_status(data)
    return 0 if all(in_step(r) for r in data) else 1
