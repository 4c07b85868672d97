"""`health`: the deploy gate. Exit 0 only when every selected host passes."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import UsageError
from . import FleetArgs
from .journaling import journal_first_ends, journal_health


def check_names(values: Sequence[str] | str | None) -> tuple[str, ...]:
    """`--check a --check b,c` → ("a", "b", "c"); nothing given → () (every check)."""
    items = [values] if isinstance(values, str) else list(values or ())
    return tuple(dict.fromkeys(n.strip() for item in items for n in item.split(",") if n.strip()))


def unknown_checks(names: Sequence[str], hosts) -> None:
    """`--check` may only name checks some selected host has (a typo must not pass the gate silently)."""
    defined = sorted({c.name for h in hosts for c in h.checks})
    missing = [n for n in names if n not in defined]
    if missing:
        raise UsageError(f"--check names {', '.join(repr(n) for n in missing)}, which no selected host defines",
                         hint=f"checks defined: {', '.join(defined)}" if defined else "add checks: to the inventory")


def run(args: FleetArgs, fetch: bool = True, checks: tuple[str, ...] | None = ()) -> int:
    from ..health import check_fleet
    from ..jobs.looks import Looks
    from ..jobs.runner import HealthProbe
    from ..remote import Connector
    from ..settings import state_dir

    inv = args.load()
    hosts = args.selected(inv)
    unknown_checks(checks or (), hosts)
    looks = Looks(state_dir(inv))
    jobs = HealthProbe({h.name: look for h in hosts if (look := looks.last(h.name)) is not None},
                       {h.name: listed for h in hosts if (listed := looks.listed(h.name)) is not None})
    connector = Connector(inv)
    try:
        report = check_fleet(inv, hosts, connector, fetch=fetch, workers=args.worker_limit(inv),
                             extras=(jobs,), checks=checks)
    finally:
        connector.close_all()
    journal_health(args.recorder, report)
    remember_jobs(args.recorder, looks, jobs)
    if args.json:
        from ..output import emit_json

        emit_json(report_json(report))
    else:
        from ..output.health import render_health

        render_health(report)
    return 0 if report.passed else 1


def remember_jobs(recorder, looks, jobs) -> None:
    """Journal the job ends this health saw first; remember what it showed, for the next look, and that every
    end it saw is journaled (`Looks.listed`)."""
    from ..jobs.looks import Look

    for host, seen in sorted(jobs.seen.items()):
        journal_first_ends(recorder, looks, seen.jobs)
        if seen.now is not None:
            looks.remember(host, Look(seen.now, frozenset(seen.shown)))
            looks.remember_listed(host, seen.now)


def report_json(report) -> dict:
    """The health report as JSON, with each host's and each check's verdict spelled out."""
    from ..models import to_jsonable

    data = to_jsonable(report)
    data["passed"] = report.passed
    for host, row in zip(report.hosts, data["hosts"], strict=True):
        row["passed"] = host.passed
        for check, item in zip(host.checks, row["checks"], strict=True):
            item["passed"] = check.passed
    return data
