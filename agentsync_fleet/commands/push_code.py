"""`push-code`: the laptop's working tree (what git tracks or would track) to a host, plus its push entries.

Refused (dry run too) when a host's checkout has commits the laptop's does not: sending the laptop's
older files would silently revert that newer committed content on the host. `--force-older` sends anyway.
"""

from __future__ import annotations

import os
import subprocess

from ..errors import FleetError
from . import FleetArgs

SHOWN = 20  # how many of a host's own commits are looked at (and named)


def run(args: FleetArgs, *, dry_run: bool = False, allow_running: bool = False, force_older: bool = False) -> int:
    from ..transfer.task import code_routes
    from .transfers import run_transfers

    check = None if force_older else refuse_older_laptop
    return run_transfers(args, "push-code", code_routes, dry_run=dry_run, allow_running=allow_running, check=check)


def refuse_older_laptop(inv, hosts: list) -> None:
    """Raise when any host that would receive the working tree has commits the laptop's checkout lacks."""
    from ..pool import run_each
    from ..remote import Connector
    from ..transfer.plan import controller

    laptop = os.path.abspath(os.path.expanduser(controller(inv).repo))
    targets = [h for h in hosts if not h.local]
    if not targets:
        return
    connector = Connector(inv)
    try:
        found = run_each(targets, lambda host: host_only_commits(connector.session(host), host, laptop), None)
    finally:
        connector.close_all()
    newer = {host.name: commits for host, commits in found.items() if not isinstance(commits, Exception) and commits}
    if not newer:
        return
    parts = [f"{name} has {len(c)}{'+' if len(c) >= SHOWN else ''} commit(s) the laptop's checkout does not: "
             + "; ".join(c[:5]) + (" …" if len(c) > 5 else "") for name, c in newer.items()]
    raise FleetError("push-code would send older files over newer committed work; nothing was sent. "
                     + " | ".join(parts),
                     host=next(iter(newer)) if len(newer) == 1 else None,
                     hint="bring those commits to the laptop first (agentsync sync-all, or git pull there), "
                          "or pass --force-older to overwrite the host's files anyway")


def host_only_commits(session, host, laptop_repo: str) -> list[str]:
    """The host's newest commits (`abbrev subject`) that are not in the laptop's HEAD, newest first."""
    from ..shell import join, path_arg

    result = session.run(join(["git", "-C", path_arg(host.repo), "log", f"-n{SHOWN}", "--format=%H %h %s", "HEAD"]))
    if not result.ok:  # no checkout (or no commit) there: nothing committed to protect
        return []
    commits = []
    for line in result.stdout.splitlines():
        full, _, rest = line.partition(" ")
        if _laptop_contains(laptop_repo, full):
            break
        commits.append(rest)
    return commits


def _laptop_contains(repo: str, commit: str) -> bool:
    proc = subprocess.run(["git", "-C", repo, "merge-base", "--is-ancestor", commit, "HEAD"],
                          capture_output=True, timeout=60)
    return proc.returncode == 0
