"""`sync-all`, `plan`, `pull` and `push`: the same engine, different stages."""

from __future__ import annotations

from . import FleetArgs


def run(args: FleetArgs, *, dry_run: bool = False, strict: bool = False, allow_running: bool = False,
        only_stages: tuple[str, ...] = ()) -> int:
    from ..connection import Connector
    from ..sync.engine import run_sync
    from ..sync.model import RunContext, SyncOptions

    inv = args.load()
    hosts = args.selected(inv)
    options = SyncOptions(dry_run=dry_run, strict=strict, allow_running=allow_running,
                          workers=args.worker_limit(inv), only_stages=only_stages)
    connector = Connector(inv)
    try:
        if args.json:
            report = run_sync(RunContext(inv, hosts, connector, options))
        else:
            from ..output.sync import LiveView

            with LiveView([h.name for h in hosts], enabled=not dry_run) as view:
                report = run_sync(RunContext(inv, hosts, connector, options, listener=view.update))
    finally:
        connector.close_all()
    _show(args, report)
    return 0 if report.ok else 1


def _show(args: FleetArgs, report) -> None:
    if args.json:
        from ..models import to_jsonable
        from ..output import emit_json

        data = to_jsonable(report)
        data["ok"] = report.ok
        emit_json(data)
        return
    from ..output.sync import render_plan, render_summary

    if report.dry_run:
        render_plan(report)
    else:
        render_summary(report)
