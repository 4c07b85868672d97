"""`artifacts`: run the inventory's S3 syncs on their hosts — every up, then every down."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..errors import UsageError
from . import FleetArgs, fleet_locked
from .journaling import journal_artifact_entry, journal_artifact_hosts

DIRECTIONS = ("up", "down")


@dataclass(frozen=True)
class ArtifactsReport:
    inventory: str
    dry_run: bool
    direction: str | None
    entries: tuple  # EntryResult, ups first
    duration_s: float

    @property
    def ok(self) -> bool:
        return all(e.ok for e in self.entries)


def selected_hosts(args: FleetArgs, inv, direction: str | None) -> list:
    """Hosts with entries in that direction; naming a host that has none is a mistake worth saying."""
    from ..artifacts.runner import entries

    inv.host_names(args.hosts, "--host")
    hosts = args.selected(inv)
    without = [h.name for h in hosts if not entries(h, direction)]
    if args.hosts and without:
        what = f"no `{direction}` entries" if direction else "no s3: entries"
        raise UsageError(f"--host names {', '.join(repr(n) for n in without)}, which has {what} in {inv.path}",
                         hint="hosts with s3: entries: " + (", ".join(h.name for h in inv.select(None)
                                                                     if entries(h, direction)) or "none"))
    return [h for h in hosts if entries(h, direction)]


def run(args: FleetArgs, *, direction: str | None = None, dry_run: bool = False) -> int:
    from ..artifacts.runner import run_fleet
    from ..remote import Connector

    if direction is not None and direction not in DIRECTIONS:
        raise UsageError(f"--direction expects up or down, got {direction!r}",
                         hint="up: host → S3, down: S3 → host; leave it out for both (up first)")
    inv = args.load()
    hosts = selected_hosts(args, inv, direction)
    connector = Connector(inv)
    start = time.monotonic()
    options = {"direction": direction, "dry_run": dry_run, "workers": args.worker_limit(inv)}
    try:
        with _lock(args, dry_run, inv, hosts, connector, options["workers"]) as lock:
            options["refusal"] = lock.refusal if lock is not None else None
            if args.json or not hosts:
                def journal_entry(outcome) -> None:
                    journal_artifact_entry(args.recorder, outcome)

                results = run_fleet(connector, hosts, on_done=journal_entry, **options)
            else:
                from ..output.artifacts import ProgressView

                with ProgressView(hosts, direction, dry_run) as view:
                    def done(outcome) -> None:
                        view.done(outcome)
                        journal_artifact_entry(args.recorder, outcome)

                    results = run_fleet(connector, hosts, on_progress=view.progress, on_done=done, **options)
    finally:
        connector.close_all()
    journal_artifact_hosts(args.recorder, results)
    report = ArtifactsReport(str(inv.path), dry_run, direction, tuple(results), round(time.monotonic() - start, 3))
    _show(args, report)
    return 0 if report.ok else 1


def _lock(args: FleetArgs, dry_run: bool, inv, hosts, connector, workers):
    """Moving data holds the fleet lock; a dry run only looks."""
    import contextlib

    if dry_run or not hosts:
        return contextlib.nullcontext()
    return fleet_locked(inv, hosts, connector, task="artifacts", workers=workers, recorder=args.recorder)


def _show(args: FleetArgs, report: ArtifactsReport) -> None:
    if args.json:
        from ..output import emit_json

        emit_json(report, {"ok": report.ok})
        return
    from ..output.artifacts import render_report

    render_report(report)
