"""`push-code`: the laptop's working tree (what git tracks or would track) to a host, plus its push entries."""

from __future__ import annotations

from . import FleetArgs


def run(args: FleetArgs, *, dry_run: bool = False, allow_running: bool = False) -> int:
    from ..transfer.task import code_routes
    from .transfers import run_transfers

    return run_transfers(args, "push-code", code_routes, dry_run=dry_run, allow_running=allow_running)
