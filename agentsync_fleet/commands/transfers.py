"""What `push-code` and `results` share: load, choose hosts, run with a progress display, report, exit status."""

from __future__ import annotations

import contextlib

from ..settings import state_dir
from . import FleetArgs, fleet_locked
from .journaling import journal_transfers


def run_transfers(args: FleetArgs, task: str, routes_for, *, dry_run: bool, allow_running: bool = False,
                  check=None) -> int:
    """`check(inv, hosts)` may refuse the run (raise) before anything moves, dry run or not."""
    from ..output.transfer import render_report

    report = transfer_report(args, task, routes_for, dry_run=dry_run, allow_running=allow_running, check=check)
    if args.json:
        from ..output import emit_json

        emit_json(report_data(report))
    else:
        render_report(report)
    return 0 if report.ok else 1


def transfer_report(args: FleetArgs, task: str, routes_for, *, dry_run: bool, allow_running: bool = False,
                    inv=None, check=None):
    """Run the transfers and return the report, printing nothing on stdout (`wait --then-results` uses it too)."""
    from ..output.transfer import TransferDisplay
    from ..remote import Connector
    from ..transfer.facts import RsyncTools
    from ..transfer.task import choose_hosts, run_task

    inv = inv or args.load()
    hosts = choose_hosts(inv, args.hosts, task, routes_for)
    if check is not None:
        check(inv, [h for h in hosts if any(r.is_code for r in routes_for(inv, h, bool(args.hosts)))])
    touched = _touched(inv, hosts, routes_for, bool(args.hosts))
    connector = Connector(inv)  # the lock, rsync and every command share one master per host
    tools = RsyncTools()  # each host's rsync: asked along with taking the lock there (one round trip for both)
    try:
        with (_fleet_lock(args, inv, touched, task, dry_run, args.worker_limit(inv), connector, tools) as lock,
              TransferDisplay(enabled=not dry_run) as display):
            return run_task(inv, hosts, task, routes_for, state_dir=state_dir(inv), dry_run=dry_run,
                            workers=args.worker_limit(inv), explicit=bool(args.hosts), listener=display.event,
                            allow_running=allow_running, connector=connector, run_id=args.recorder.run_id,
                            tools=tools, refusal=lock.refusal if lock is not None else None,
                            on_host_done=lambda host, results: journal_transfers(args.recorder, task, host,
                                                                                 results))
    finally:
        connector.close_all()


def report_data(report) -> dict:
    from ..models import to_jsonable
    from ..transfer.model import totals

    data = to_jsonable(report)
    data.update(ok=report.ok, totals=totals(report.transfers))
    return data


def _touched(inv, hosts, routes_for, explicit: bool) -> list:
    """The chosen hosts, the other side of each of their transfers (a relay's target), and the laptop."""
    names = {h.name for h in hosts}
    for host in hosts:
        names.update(n for r in routes_for(inv, host, explicit) for n in (r.src.host.name, r.dest.host.name))
    return [h for h in inv.select(None) if h.name in names or h.local]


@contextlib.contextmanager
def _fleet_lock(args: FleetArgs, inv, involved, task: str, dry_run: bool, workers: int | None, connector, tools):
    """Moving files holds the fleet lock on the hosts involved and the laptop; a dry run only looks. The rsync
    version check rides along with the lock (a host it could not ask there is asked before its first transfer)."""
    from ..steps.rsync_tool import version_script

    if dry_run:
        yield None
        return
    with fleet_locked(inv, involved, connector, task=task, workers=workers, recorder=args.recorder,
                      also=lambda host: version_script()) as lock:
        for name, (output, noise) in lock.answers.items():
            tools.record(inv.hosts[name], output, noise)
        yield lock
