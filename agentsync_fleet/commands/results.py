"""`results`: bring a host's results (its `results:` and rsync pull entries) back, backing up what they replace."""

from __future__ import annotations

from . import FleetArgs


def run(args: FleetArgs, *, dry_run: bool = False) -> int:
    from ..transfer.task import result_routes
    from .transfers import run_transfers

    return run_transfers(args, "results", result_routes, dry_run=dry_run)
