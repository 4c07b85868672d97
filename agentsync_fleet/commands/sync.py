"""`sync-all`, `plan`, `pull` and `push`: the same engine, different stages.

Runs that change the fleet hold the fleet lock (`locks.fleet_lock`); dry
runs take none. `--resume` narrows the hosts to those that did not end ok
in the last sync-all of this inventory (`journal.resume.resume_plan`). After
a real sync-all the inventory's `notify` command gets the JSON report.
"""

from __future__ import annotations

import contextlib
import json

from ..errors import UsageError
from ..settings import state_dir
from . import FleetArgs, fleet_locked


def run(args: FleetArgs, *, dry_run: bool = False, strict: bool = False, allow_running: bool = False,
        only_stages: tuple[str, ...] = (), resume: bool = False, task: str = "sync-all", gate: bool = False) -> int:
    from ..engine.context import SyncOptions
    from ..remote import Connector

    inv = args.load()
    hosts = args.selected(inv)
    resumed_from = None
    if resume:
        hosts, resumed_from = _resume_hosts(args, inv, hosts, args.json)
        if not hosts:
            if args.json:  # nothing to run, yet scripts get the report they asked for
                from ..records import SyncReport

                _show(args, SyncReport(args.recorder.run_id, str(inv.path), dry_run, (), (), 0.0),
                      {"resumed_from": resumed_from})
            return 0
    args.recorder.annotate(hosts=[h.name for h in hosts], dry_run=dry_run, resumed_from=resumed_from)
    options = SyncOptions(dry_run=dry_run, strict=strict, allow_running=allow_running,
                          workers=args.worker_limit(inv), only_stages=only_stages, resume=resume)
    connector = Connector(inv)
    try:
        if gate and _gate_refuses(args, inv, hosts, connector, fetch=not dry_run):
            return 1
        with _lock(args, dry_run, inv, hosts, connector, task, options.workers) as lock:
            report = _engine(args, inv, hosts, connector, options, lock.not_locked if lock else {})
    finally:
        connector.close_all()
    args.recorder.annotate(origin_head=report.origin_head, aborted=report.aborted)
    extra = {"resumed_from": resumed_from} if resumed_from else {}
    if task == "sync-all" and not dry_run:
        extra.update(_notify(args, inv, report))
    _show(args, report, extra, task)
    return 0 if report.ok else 1


def _gate_refuses(args: FleetArgs, inv, hosts, connector, fetch: bool) -> bool:
    """`--gate`: the health gate, checks included, before anything changes (before even the fleet lock).

    Being behind or diverged from origin does not count: that is what sync-all is for.
    """
    from ..health import check_fleet, position_failure

    report = check_fleet(inv, hosts, connector, fetch=fetch, workers=args.worker_limit(inv), checks=())
    blockers = {h.host: [f for f in h.failures if f != position_failure(h.repo)] for h in report.hosts}
    blockers = {host: reasons for host, reasons in blockers.items() if reasons}
    if not blockers:
        return False
    args.recorder.annotate(gate_refused=blockers)
    if args.json:
        from ..output import emit_json
        from .health import report_json

        emit_json({"ok": False, "refused": "deploy gate", "blockers": blockers, "gate": report_json(report)})
    else:
        from ..output.gate import render_gate_refusal
        from ..output.health import render_health

        render_health(report)
        render_gate_refusal(blockers)
    return True


def _engine(args: FleetArgs, inv, hosts, connector, options, not_locked: dict[str, str]):
    from ..engine.context import RunContext
    from ..output.sync import LiveView, render_interrupted
    from ..pipeline import run_sync

    with LiveView([h.name for h in hosts], enabled=not options.dry_run and not args.json) as view:
        ctx = RunContext(inv, hosts, connector, options, listener=view.update, run_id=args.recorder.run_id,
                         observer=args.recorder, not_locked=not_locked)
        try:
            return run_sync(ctx)
        except KeyboardInterrupt:  # moves under way were finished first (`interrupts.held`): say where things are
            view.__exit__(None, None, None)
            render_interrupted(list(ctx.results.values()))
            raise


def _lock(args: FleetArgs, dry_run: bool, inv, hosts, connector, task: str, workers):
    """The fleet lock for a run that changes things; a dry run only reads."""
    if dry_run:
        return contextlib.nullcontext()
    return fleet_locked(inv, hosts, connector, task=task, workers=workers, recorder=args.recorder)


def _resume_hosts(args: FleetArgs, inv, hosts, quiet: bool):
    """The selected hosts that did not end ok in the last sync-all of this inventory that included them."""
    from ..journal.resume import resume_plan
    from ..output.history import render_resume

    plan, journal_path = resume_plan(state_dir(inv), str(inv.path), [h.name for h in hosts], args.recorder.run_id)
    if plan is None:
        raise UsageError(f"nothing to resume: no earlier sync-all of {inv.path} in the journal ({journal_path})",
                         hint="run sync-all without --resume")
    render_resume(plan, to_stderr=quiet)
    return [h for h in hosts if h.name in plan.rerun], plan.run_id


def _report_json(report) -> dict:
    from ..models import to_jsonable

    data = to_jsonable(report)
    data["ok"] = report.ok
    return data


def _notify(args: FleetArgs, inv, report) -> dict:
    from ..models import to_jsonable
    from ..notify import run_notify
    from ..output import warn
    from ..settings import notify

    spec = notify(inv)
    if spec is None:
        return {}
    outcome = run_notify(spec, json.dumps(_report_json(report)), cwd=inv.path.parent)
    args.recorder.annotate(notify=to_jsonable(outcome))
    if not outcome.ok:
        warn(f"notify command `{outcome.command}` failed: {outcome.detail} (the sync itself is unaffected)")
    return {"notify": to_jsonable(outcome)}


def _show(args: FleetArgs, report, extra: dict, task: str = "sync-all") -> None:
    if args.json:
        from ..output import emit_json

        emit_json(_report_json(report), extra)
        return
    from ..output.sync import render_plan, render_summary

    if report.dry_run:
        render_plan(report)
    else:
        render_summary(report, task)
