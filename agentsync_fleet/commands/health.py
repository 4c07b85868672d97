"""`health`: the deploy gate. Exit 0 only when every selected host passes."""

from __future__ import annotations

from . import FleetArgs
from .journaling import journal_health


def run(args: FleetArgs, fetch: bool = True) -> int:
    from ..health import check_fleet
    from ..jobs.runner import HealthProbe
    from ..models import to_jsonable
    from ..remote import Connector

    inv = args.load()
    hosts = args.selected(inv)
    connector = Connector(inv)
    try:
        report = check_fleet(inv, hosts, connector, fetch=fetch, workers=args.worker_limit(inv),
                             extras=(HealthProbe(),))
    finally:
        connector.close_all()
    journal_health(args.recorder, report)
    if args.json:
        from ..output import emit_json

        data = to_jsonable(report)
        data["passed"] = report.passed
        for host, row in zip(report.hosts, data["hosts"], strict=True):
            row["passed"] = host.passed
        emit_json(data)
    else:
        from ..output.health import render_health

        render_health(report)
    return 0 if report.passed else 1
